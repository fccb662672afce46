"""Team-plan subscribers from before teams existed get a team: they own it, its paid seats are their
subscription's quantity. Their account is otherwise unchanged (the tier stays team)."""

from django.db import migrations


def team_subscribers_get_a_team(apps, schema_editor):
    BillingAccount = apps.get_model("billing", "BillingAccount")
    Team = apps.get_model("teams", "Team")
    Membership = apps.get_model("teams", "Membership")
    accounts = BillingAccount.objects.filter(user__tier="team").exclude(user__team_membership__isnull=False)
    for account in accounts.select_related("user"):
        team = Team.objects.create(name=account.user.email, subscribed_seats=max(1, account.seats))
        Membership.objects.create(team=team, user=account.user, role="owner")


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0003_llm_usage_roll_up_beat_task"),
        ("teams", "0001_initial"),
    ]

    # Going back leaves the teams in place: the teams app's own migration removes them.
    operations = [migrations.RunPython(team_subscribers_get_a_team, migrations.RunPython.noop)]
