"""The demo catalog's "shop" flow (apps/sessions/data/default_flows.json), added to the
targets that already have the demo's login and cart endpoints, as new targets get it from
``services.load_default_flows``. A target with a flow or endpoint named "shop" is left alone.

Frozen here: the data file may change in later releases, a migration must not."""

from django.db import migrations

SHOP_FLOW = {
    "name": "shop",
    "weight": 1.0,
    "description": "A shopper logs in (the answer's csrf_token and session cookie are kept), "
    "adds a random product to the cart with that token, then views the cart.",
}
SHOP_STEPS = [
    ("login", 0.5, [{"name": "csrf_token", "json_path": "$.csrf_token"}]),
    ("cart-add", 0.5, []),
    ("cart-view", 0.0, []),
]


def add_shop_flow(apps, schema_editor):
    Endpoint = apps.get_model("loadtests", "Endpoint")
    Flow = apps.get_model("loadtests", "Flow")
    FlowStep = apps.get_model("loadtests", "FlowStep")
    Target = apps.get_model("loadtests", "Target")
    names = [name for name, _, _ in SHOP_STEPS]
    for target in Target.objects.all():
        endpoints = {e.name: e for e in Endpoint.objects.filter(target=target, name__in=names)}
        if len(endpoints) < len(names):
            continue
        if Flow.objects.filter(target=target, name=SHOP_FLOW["name"]).exists():
            continue
        if Endpoint.objects.filter(target=target, name=SHOP_FLOW["name"]).exists():
            continue
        flow = Flow.objects.create(target=target, **SHOP_FLOW)
        for position, (name, think_time_s, extract) in enumerate(SHOP_STEPS, start=1):
            FlowStep.objects.create(
                flow=flow,
                position=position,
                endpoint=endpoints[name],
                think_time_s=think_time_s,
                extract=extract,
            )


class Migration(migrations.Migration):
    dependencies = [
        ("loadtests", "0019_flowstats"),
    ]

    operations = [
        migrations.RunPython(add_shop_flow, migrations.RunPython.noop),
    ]
