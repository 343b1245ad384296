# Documentation exports.
#   make docs      regenerate the pipeline diagram, then build every Word document below
#   make docx      build the Word documents from the committed diagram (needs pandoc and python3)
#   make diagrams  regenerate docs/pipeline.{es,en}.png from tools/pipeline_diagram.py (matplotlib)
# DOCS_OUT=DIR writes the .docx files elsewhere (the tests use a temporary directory).
# Every document is built against $(DOCS_OUT)/reference.docx (tools/reference_docx.py: A4, 2.5 cm
# margins, bordered tables), regenerated from pandoc's own default each time.
PANDOC ?= pandoc
PYTHON ?= python
DOCS_OUT ?= docs
DOCUMENTS := technical-overview.es technical-overview vlm-section.es vlm-section \
	prototype-to-service.es prototype-to-service
DOCX_FILES := $(DOCUMENTS:%=$(DOCS_OUT)/%.docx)
REFERENCE_DOC := $(DOCS_OUT)/reference.docx

.PHONY: docs docx diagrams settings-table check-docs

docs: diagrams
	$(MAKE) docx

docx: $(DOCX_FILES)

diagrams:
	$(PYTHON) tools/pipeline_diagram.py --lang es --out docs/pipeline.es.png
	$(PYTHON) tools/pipeline_diagram.py --lang en --out docs/pipeline.en.png

$(REFERENCE_DOC): tools/reference_docx.py
	@mkdir -p $(DOCS_OUT)
	$(PYTHON) tools/reference_docx.py --pandoc $(PANDOC) --out $@

$(DOCS_OUT)/technical-overview.es.docx: docs/pipeline.es.png
$(DOCS_OUT)/technical-overview.docx: docs/pipeline.en.png

$(DOCS_OUT)/%.docx: docs/%.md $(REFERENCE_DOC)
	@mkdir -p $(DOCS_OUT)
	$(PANDOC) --from=markdown --to=docx --resource-path=docs --reference-doc=$(REFERENCE_DOC) --output=$@ $<
	$(PYTHON) tools/reference_docx.py --keep-rows $@

# Regenerate / check the README's configuration table from app.settings.Settings.
settings-table:
	python tools/settings_table.py --write README.md

check-docs:
	python tools/settings_table.py --check README.md
