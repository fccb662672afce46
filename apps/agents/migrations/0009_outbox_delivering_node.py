from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('agents', '0008_outbox_delivering_until'),
    ]

    operations = [
        migrations.AddField(
            model_name='outboxitem',
            name='delivering_node',
            field=models.CharField(blank=True, default='', max_length=64),
        ),
    ]
