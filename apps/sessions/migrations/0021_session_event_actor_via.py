"""Who asked for each session event and through which surface (``actor``, ``via``), the
lifecycle's event kinds, and the configuration history's "dashboard" surface renamed "page"
(one vocabulary of surfaces for events and history alike). Events recorded before keep
"system": nobody knows now who caused them."""

from django.db import migrations, models


def dashboard_to_page(apps, schema_editor):
    ConfigChange = apps.get_model("loadtests", "ConfigChange")
    ConfigChange.objects.filter(via="dashboard").update(via="page")


def page_to_dashboard(apps, schema_editor):
    ConfigChange = apps.get_model("loadtests", "ConfigChange")
    ConfigChange.objects.filter(via="page").update(via="dashboard")


class Migration(migrations.Migration):

    dependencies = [
        ('loadtests', '0020_shop_flow'),
    ]

    operations = [
        migrations.AddField(
            model_name='sessionevent',
            name='actor',
            field=models.CharField(default='system', max_length=150),
        ),
        migrations.AddField(
            model_name='sessionevent',
            name='via',
            field=models.CharField(choices=[('page', "the dashboard's pages"), ('api', 'the REST API'), ('admin', 'the admin'), ('cli', 'the command line'), ('schedule', 'a schedule'), ('system', 'the service itself (monitor, engine)')], default='system', max_length=10),
        ),
        migrations.AlterField(
            model_name='sessionevent',
            name='kind',
            field=models.CharField(choices=[('created', 'Session created'), ('started', 'Start asked (shards queued)'), ('load_started', 'Load began'), ('stop_requested', 'Stop asked'), ('emergency_stop', 'Emergency stop'), ('ended', 'Session ended'), ('workers_lost', 'Load workers lost'), ('users_changed', 'User count changed'), ('weights_changed', 'Endpoint weights changed'), ('breaker_opened', 'Circuit breaker opened'), ('breaker_closed', 'Circuit breaker closed'), ('load_reduced', 'Load reduced (error rate)'), ('load_restored', 'Load restored'), ('users_shed', 'Users shed (worker resources)'), ('users_restored', 'Shed users restored'), ('shard_redispatched', 'Shard re-dispatched'), ('shard_superseded', 'Superseded shard stopped'), ('engine_error', 'Error in the load engine'), ('waiting_for_workers', 'Waiting for a free load worker'), ('webhook_failed', 'Webhook delivery failed'), ('newrelic_failed', 'New Relic unreachable or refused'), ('threshold_failed', 'A threshold failed'), ('redis_state_rebuilt', 'Redis state rebuilt (counts may lack some)')], max_length=30),
        ),
        migrations.AlterField(
            model_name="configchange",
            name="via",
            field=models.CharField(choices=[('page', "the dashboard's pages"), ('api', 'the REST API'), ('admin', 'the admin'), ('cli', 'the command line'), ('schedule', 'a schedule'), ('system', 'the service itself (monitor, engine)')], max_length=10),
        ),
        migrations.RunPython(dashboard_to_page, page_to_dashboard),
    ]
