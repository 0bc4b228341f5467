"""Small pieces every app shares and no domain owns: write-once records (``models.WriteOnce``),
the read-only admin (``admin.ReadOnlyAdmin``), the rules for names and free text (``text``).

It imports nothing from the other apps, so any of them may import it.
"""
