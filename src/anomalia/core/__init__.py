"""Pure PatchCore: no web, settings, CLI or file-path knowledge lives here."""
