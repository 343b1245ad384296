# Documentation exports.
#   make docs      regenerate the pipeline diagram, then build every Word document below
#   make docx      build the Word documents from the committed diagram (needs pandoc only)
#   make diagrams  regenerate docs/pipeline.{es,en}.png from tools/pipeline_diagram.py (matplotlib)
# DOCS_OUT=DIR writes the .docx files elsewhere (the tests use a temporary directory).
PANDOC ?= pandoc
PYTHON ?= python
DOCS_OUT ?= docs
DOCUMENTS := technical-overview.es technical-overview vlm-section.es vlm-section
DOCX_FILES := $(DOCUMENTS:%=$(DOCS_OUT)/%.docx)

.PHONY: docs docx diagrams settings-table check-docs

docs: diagrams
	$(MAKE) docx

docx: $(DOCX_FILES)

diagrams:
	$(PYTHON) tools/pipeline_diagram.py --lang es --out docs/pipeline.es.png
	$(PYTHON) tools/pipeline_diagram.py --lang en --out docs/pipeline.en.png

$(DOCS_OUT)/technical-overview.es.docx: docs/pipeline.es.png
$(DOCS_OUT)/technical-overview.docx: docs/pipeline.en.png

$(DOCS_OUT)/%.docx: docs/%.md
	@mkdir -p $(DOCS_OUT)
	$(PANDOC) --from=markdown --to=docx --resource-path=docs --output=$@ $<

# Regenerate / check the README's configuration table from app.settings.Settings.
settings-table:
	python tools/settings_table.py --write README.md

check-docs:
	python tools/settings_table.py --check README.md
