"""Each document's language (issue 19): detected offline, recorded by ingest in the manifest, the metrics and every
paragraph row, and asked for in the synthesis prompts.

A Spanish PDF is rendered here with fpdf2; the real Spanish GNU MathProg manual from Debian's glpk-doc
(/usr/share/doc/glpk-doc/gmpl_es.pdf) goes through the same check when installed (slow).
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from sling.documents.language import detect_language, language_name
from tests.test_clean import font
from tests.test_ingest import read, run_ingest

GMPL_ES = Path("/usr/share/doc/glpk-doc/gmpl_es.pdf")
SPANISH = [
    "El lenguaje de modelado describe un modelo de programación matemática como un conjunto de sentencias y "
    "bloques de datos. Cada sentencia declara un conjunto, un parámetro, una variable, una restricción o el "
    "objetivo que el resolvedor debe minimizar o maximizar.",
    "Los conjuntos se definen por su nombre y, cuando es necesario, por los índices que los recorren. Un parámetro "
    "puede tener un valor por omisión, que se usa cuando los datos no especifican ninguno para un elemento dado.",
    "Las restricciones se escriben como expresiones lineales de las variables. El traductor comprueba que cada "
    "expresión esté bien formada antes de generar el problema, e informa de la línea del error si no lo está.",
]


@pytest.mark.parametrize("text, code", [
    ("The Satisfiability Problem is a classic combinatorial problem: find values of the variables on which the "
     "formula is true.", "en"),
    (SPANISH[0], "es"),
    ("Die Datei enthält für jede Zeile eine Klausel, und der Löser liest sie der Reihe nach ein.", "de"),
    ("Le fichier contient une clause par ligne, et le solveur les lit dans l'ordre.", "fr"),
])
def test_detect_language(text, code):
    assert detect_language(text) == code


def test_too_little_text_has_no_language():
    assert detect_language("x = 3.14") is None and detect_language("") is None


def test_language_name():
    assert [language_name(c) for c in ("es", "de", "en", "pt")] == ["Spanish", "German", "English", "Portuguese"]
    assert language_name("zz") == "zz"


def test_synthesis_prompts_ask_for_the_documents_language(cfg_factory):
    from sling.data.questions import QUESTION_TYPES, type_prompt
    from sling.documents.language import prompt_language

    cfg = cfg_factory()
    assert prompt_language({"language": "es"}) == "Spanish"
    assert prompt_language({"language": None}) == prompt_language({}) == "the language of the text"
    for name in ["plain", *QUESTION_TYPES]:
        assert "in Spanish" in type_prompt(name, cfg.synth.question_prompt).format(paragraph="Texto.", language="Spanish")
    answer = cfg.synth.answer_prompt.format(paragraph="Texto.", question="¿Qué?", language="Spanish")
    assert "in Spanish" in answer and "{" not in answer


def test_no_prompt_holds_text_written_for_one_language():
    """Any language, no per-language prompt text: every question prompt is one text whatever the language, which
    enters only by its name; the form to follow comes from questions already kept in that language."""
    from sling.data.questions import EXAMPLES, MULTIHOP_PROMPT, QUESTION_TYPES, with_examples

    for prompt in [*QUESTION_TYPES.values(), MULTIHOP_PROMPT, EXAMPLES]:
        assert "Spanish" not in prompt and "¿" not in prompt and "{language}" in prompt
    shown = with_examples("Write.", "German", ["Wie groß ist die Datei?"])
    assert shown.startswith("Write.") and "- Wie groß ist die Datei?" in shown and "in German" in shown
    assert with_examples("Write.", "German", []) == "Write."


def make_spanish_pdf(path: Path) -> None:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_creation_date(datetime(2026, 1, 1, tzinfo=timezone.utc))
    pdf.add_font("DejaVu", fname=str(font()))
    pdf.add_page()
    pdf.set_font("DejaVu", size=11)
    for block in SPANISH:
        pdf.multi_cell(0, 6, block, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    path.write_bytes(bytes(pdf.output()))


def ingest_spanish(corpus: Path, work: Path) -> None:
    rows, manifest, metrics = read(run_ingest(corpus, work))
    assert rows and {r["language"] for r in rows} == {"es"}
    assert [d["language"] for d in manifest["documents"]] == ["es"]
    assert metrics["languages"] == {"es": 1}
    assert list(metrics["language_by_document"].values()) == ["es"]
    assert metrics["absent_share"] <= 0.005  # both readers agree on the Spanish text


def test_a_spanish_document_is_recorded_as_spanish(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    make_spanish_pdf(corpus / "manual_es.pdf")
    ingest_spanish(corpus, tmp_path / "work")


@pytest.mark.slow
@pytest.mark.skipif(not GMPL_ES.exists(), reason="Debian's glpk-doc is not installed (apt-get install glpk-doc)")
def test_the_real_spanish_manual_is_recorded_as_spanish(tmp_path):
    corpus = tmp_path / "corpus"  # 77 pages: about a minute on 2 cores
    corpus.mkdir()
    (corpus / GMPL_ES.name).symlink_to(GMPL_ES)
    ingest_spanish(corpus, tmp_path / "work")


def test_a_question_in_another_language_is_dropped_even_with_a_reference_in_the_documents():
    """Real: the embedded teacher asked for a German question on debian-reference's German appendix wrote an English
    one; its extractive reference is the paragraph's German sentence, which carried it through a joint check."""
    from sling.config import compose
    from sling.teacher.quality import filter_rows

    paragraph = ("Die Lehrinhalte haben ihren Ursprung und ihre Inspiration in folgenden Quellen: \"Linux User's Guide\" "
                 "von Larry Greenfield (Dezember 1996) abgelöst durch \"Debian Tutorial\" von Havoc Pennington.")
    row = {"doc_id": "d", "paragraph": paragraph, "language": "de",
           "question": "What is the meaning of \"Debian Tutorial\" in German?", "answer": paragraph}
    kept, dropped, _ = filter_rows(compose([]).dataset, [row], percentile=0)
    assert kept == [] and dropped["wrong_language"] == 1


def test_a_question_quoting_a_few_words_of_the_documents_language_is_still_in_another():
    """Real: asked for Portuguese questions on glpk-doc's Brazilian Portuguese GMPL manual, the embedded teacher wrote
    English ones quoting the manual's words; py3langid ranks Portuguese second for one (normalised probability
    0.003), which the top-three rule alone let through. Short questions really in the language still pass."""
    from sling.documents.language import matches_language

    assert matches_language('What is the purpose of the "descrição do modelo" in the context of a mathematical model?',
                            "pt") is False
    assert matches_language("E que não existe outro forma de fazê-lo?", "pt") is True
    assert matches_language("Wie konfiguriert man die Locale unter Debian?", "de") is True
    assert matches_language("Comment configurer le clavier avec dpkg-reconfigure ?", "fr") is True
    assert matches_language("What does glp_read_cnfsat read?", "en") is True
    # a question must read as its language first (quality.filter_rows): this English one ranks Portuguese second (0.11)
    assert matches_language("What is the purpose of the descrição do modelo section?", "pt", top=1) is False


def test_a_question_is_in_the_language_of_its_words_outside_quotation_marks():
    """Real: on debian-reference's French preface the embedded teacher wrote an English question quoting a whole French
    sentence of it, which py3langid ranks French first; the words around the quotes are English. A question quoting
    the document's words in its own language keeps it (German and French quotation marks), and one whose words outside
    the quotes are too few to tell is read whole."""
    from sling.documents.language import matches_language

    q = ("What is the name of the person who made the text \"La Référence Debian fut lancée par l’assassinat de "
         "l’administration système\" into French?")
    assert matches_language(q, "fr", top=1) is False and matches_language(q, "en", top=1) is True
    assert matches_language("Was bedeutet „Liste von Werten für die Zeichenkodierung“ in der Debian-Referenz?", "de",
                            top=1) is True
    assert matches_language("Comment utiliser « apt-get install » pour installer un paquet ?", "fr", top=1) is True
    assert matches_language("Qu'est-ce que « la Référence Debian » ?", "fr", top=1) is True


def test_a_paragraph_plainly_in_another_language_than_its_document_gets_its_own():
    """Real paragraphs of debian-reference's French chapter 8 (partly translated: most of it is still English) and of
    its French preface: the French paragraph of the English-majority chapter reads as French, an English one of the
    French preface as English, and short or mixed text keeps its document's language."""
    from sling.documents.language import paragraph_language

    french = ("Pour les échanges de données entre plateformes (consultez Section 10.1.7, « Périphériques "
              "d’enregistrement amovibles »), il vous faudra peut-être monter certains systèmes de fichiers ayant un "
              "codage particulier. Par exemple, , la commande mount(8) pour un système de fichiers vfat suppose que "
              "l’on utilise CP437 si on l’utilise sans option.")
    english = ("I have updated \"Debian Reference (version 2)\" to address new topics (Systemd, Wayland, IMAP, "
               "PipeWire, Linux kernel 5.10) and removed outdated topics (SysV init, CVS, Subversion, SSH protocol 1, "
               "Linux kernels before 2.5). References to Jessie 8 (2015-2020) release situation or older are mostly "
               "removed.")
    assert paragraph_language(french, "en") == "fr" and paragraph_language(french, "fr") == "fr"
    assert paragraph_language(english, "fr") == "en"
    assert paragraph_language("mount -t vfat -o codepage=932 /dev/sdb1 /mnt", "fr") == "fr"  # too short to tell
    assert paragraph_language(english, None) is None  # a document of no known language leaves its paragraphs so
