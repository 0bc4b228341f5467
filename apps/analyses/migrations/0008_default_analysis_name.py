"""The default analysis's name no longer names an estimator its settings may not use: the model
is stated with every result instead."""

from django.db import migrations


def rename(apps, schema_editor):
    Analysis = apps.get_model("analyses", "Analysis")
    Analysis.objects.filter(is_default=True, name="Primary analysis (REML)").update(name="Primary analysis")


def restore(apps, schema_editor):
    Analysis = apps.get_model("analyses", "Analysis")
    Analysis.objects.filter(is_default=True, name="Primary analysis").update(name="Primary analysis (REML)")


class Migration(migrations.Migration):
    dependencies = [("analyses", "0007_release_entry_note")]
    operations = [migrations.RunPython(rename, restore)]
