# Documentation exports. `make docx` writes the technical overview as a Word document.
PANDOC ?= pandoc
OVERVIEW := docs/technical-overview.md
DOCX ?= docs/technical-overview.docx

.PHONY: docx settings-table check-docs

docx: $(DOCX)

$(DOCX): $(OVERVIEW)
	$(PANDOC) --from=markdown --to=docx --resource-path=docs --output=$@ $<

# Regenerate / check the README's configuration table from app.settings.Settings.
settings-table:
	python tools/settings_table.py --write README.md

check-docs:
	python tools/settings_table.py --check README.md
