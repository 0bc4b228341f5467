"""Revisions and staged uploads.

``Dataset.submitted_version`` names the version the analyses use. Until now that was the current
version of every submitted dataset (a version stored while its dataset was submitted was submitted
at once), so the backfill sets it to each dataset's newest version that was ever submitted: the
analyses of every outcome read exactly the rows they read before the upgrade.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def backfill_submitted_version(apps, schema_editor):
    Dataset = apps.get_model("datasets", "Dataset")
    DatasetVersion = apps.get_model("datasets", "DatasetVersion")
    for dataset in Dataset.objects.all():
        newest = (
            DatasetVersion.objects.filter(dataset=dataset, submitted_at__isnull=False)
            .order_by("-number")
            .first()
        )
        if newest is not None:
            Dataset.objects.filter(pk=dataset.pk).update(submitted_version=newest)


class Migration(migrations.Migration):

    dependencies = [
        ('consortium', '0003_outcome_measures_change_scores'),
        ('datasets', '0002_version_submitted_at'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='dataset',
            name='submitted_version',
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='datasets.datasetversion'),
        ),
        migrations.CreateModel(
            name='StagedUpload',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=32, unique=True)),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('reason', models.CharField(blank=True, max_length=500)),
                ('original_filename', models.CharField(blank=True, max_length=255)),
                ('content', models.BinaryField(blank=True, null=True)),
                ('source_format', models.CharField(blank=True, max_length=10)),
                ('columns', models.JSONField(default=list)),
                ('column_mapping', models.JSONField(default=list)),
                ('rows', models.JSONField(default=list)),
                ('warnings', models.JSONField(default=list)),
                ('form_counts', models.JSONField(default=dict, help_text='Rows per input form (raw, yi_vi, yi_sei, di, ti)')),
                ('base_version', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='datasets.datasetversion')),
                ('centre', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='consortium.centre')),
                ('created_by', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('outcome', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='+', to='consortium.outcome')),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.RunPython(backfill_submitted_version, migrations.RunPython.noop),
    ]
