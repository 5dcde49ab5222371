"""EndpointStats counts two parts of its requests apart: those a stop cut (no failures of the
target's) and those that never reached the target (refused, connect timeout, DNS)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("loadtests", "0021_session_event_actor_via"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpointstats",
            name="cut_by_stop",
            field=models.BigIntegerField(default=0),
        ),
        migrations.AddField(
            model_name="endpointstats",
            name="unreached",
            field=models.BigIntegerField(default=0),
        ),
    ]
