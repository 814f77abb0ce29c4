"""The content report: length mix, questions, speaking rate, phoneme and token coverage, advice."""

import json

import pytest

import speechgen
from engine.prep import content


def _segs(texts, dur=4.0, source="a"):
    return [{"id": f"{source}{k}", "source": source, "text": t, "duration": dur, "speech_seconds": dur - 0.4}
            for k, t in enumerate(texts)]


needs_espeak = pytest.mark.skipif(not content.phonemizer_available(), reason="espeak-ng not installed")


@needs_espeak
def test_phoneme_coverage_of_known_sentences_matches_the_hand_checked_list():
    rep = content.phoneme_coverage(["She measured the ship's joy, thinking of vision."], "en")
    # ʃ iː | m ɛ ʒ ɚ d | ð ə | ʃ ɪ p s | dʒ ɔɪ | θ ɪ ŋ k ɪ ŋ | ʌ v | v ɪ ʒ ə n   (ɚ = ə + ɹ)
    assert set(rep["counts"]) == set("ʃ iː m ɛ ʒ ə ɹ d ð ɪ p s dʒ ɔɪ θ ŋ k ʌ v n".split())
    assert rep["counts"]["ɪ"] == 4 and rep["counts"]["ʒ"] == 2
    assert rep["inventory"] == 40 and rep["covered"] == 20
    assert set(rep["missing"]) == set(content.INVENTORY["en"]) - set(rep["counts"])
    rep = content.phoneme_coverage(["The cat sat on a big red mat."], "en")
    assert set(rep["counts"]) == set("ð ə k æ t s ɔː n b ɪ ɡ ɹ ɛ d m".split())
    assert "ʒ" in rep["missing"] and "θ" in rep["missing"]


@needs_espeak
def test_the_test_sentences_miss_exactly_these_phonemes():
    rep = content.phoneme_coverage(speechgen.SENTENCES, "en")
    assert rep["missing"] == ["ʒ", "dʒ", "ɔɪ"]           # no "measure", "judge" or "boy" among them


# words that hold every phoneme of the language (checked by hand against the inventories)
COVERING_WORDS = {
    "es": ["Un beso en la onda, tengo un gato, mundo, hombre.", "El perro corre rápido por la calle.",
           "Yo quiero llegar a casa mañana.", "El chico jugó con la guitarra.", "Hoy hace frío y el cielo gris.",
           "Zapato, ciudad, año, huevo, lluvia, gente, bueno, dedo, agua."],
    "fr": ["Le chat boit du lait sous la table.", "Un bon vin blanc, une brune, un pain, parfum.",
           "Je veux deux œufs, la peur, le feu, le cœur.", "Ça gagne, l'agneau, oui, fille, rouge, zéro.",
           "Il est allé à l'école avec son frère, beau, pomme, rose, vous, tu."],
    "de": ["Der Bach, ich, ach, Buch, Milch, Zeit, Pferd, Apfel.", "Schön, Müller, Hütte, Löffel, Käse, Bett, Boot.",
           "Haus, Mai, neu, Ring, singen, ja, Vater, Mutter, Wasser, rot.",
           "Ihr, bitte, fühlen, Besen, fällt, hören, Hölle, Tante, Ofen, Sonne, gut, Mund, besser, Bahn, Kamm."],
    "it": ["Il cane corre nel parco con gli amici.", "La pizza, lo zio, lo zero, la rosa, la casa, gnocchi, figlio, sci.",
           "Cena, giorno, gatto, chiesa, buono, piede, uomo, bello, bene, sette, cosa, otto, sole, vino, faccia, zanzara."],
}


@needs_espeak
@pytest.mark.parametrize("language", sorted(COVERING_WORDS))
def test_every_phoneme_of_the_language_is_found_and_nothing_outside_it(language):
    """Each inventory is in espeak-ng's own notation: words holding all of a language's phonemes
    cover all of it, and what espeak-ng writes for them folds into it (no stray symbols)."""
    rep = content.phoneme_coverage(COVERING_WORDS[language], language)
    assert rep["available"] and rep["inventory"] == len(content.INVENTORY[language])
    assert rep["missing"] == []
    assert set(rep["counts"]) <= set(content.INVENTORY[language])


@needs_espeak
def test_spanish_coverage_of_a_sentence_matches_the_hand_checked_list():
    rep = content.phoneme_coverage(["El perro corre rápido por la calle."], "es")
    # e l | p e r o | k o r e | r a p i ð o | p o ɾ | l a | k a ʎ e   (ð = the soft d)
    assert set(rep["counts"]) == set("e l p r o k a i d ɾ ʎ".split())
    assert rep["counts"]["r"] == 3 and rep["counts"]["d"] == 1
    assert set(rep["missing"]) == set("b t ɡ f θ s x tʃ ʝ m n ɲ j w u".split())


def test_phonemes_not_available_degrade_to_a_reason(monkeypatch):
    monkeypatch.setattr(content, "phonemizer_available", lambda: False)
    rep = content.phoneme_coverage(["Hello there."], "en")
    assert rep == {"available": False, "reason": "espeak-ng is not installed"}
    assert any("not available" in line for line in content.lines(
        content.content_report(_segs(["Hello there."]), [{"id": "a", "name": "a.wav"}], "en", 2, 11)))


def test_no_questions_gets_the_guides_advice_and_a_mixed_set_does_not():
    flat = _segs([speechgen.SENTENCES[k % 24] for k in range(12)])
    rep = content.content_report(flat, [{"id": "a", "name": "a.wav"}], "en", 2.0, 11.0)
    assert rep["sentences"]["questions"] == 0
    codes = dict(content.advice(rep))
    assert "no_questions" in codes and "emotional range" in codes["no_questions"]
    mixed = _segs([speechgen.SENTENCES[k] for k in range(10)] + ["Where did you go?", "What a day!"])
    rep = content.content_report(mixed, [{"id": "a", "name": "a.wav"}], "en", 2.0, 11.0)
    assert rep["sentences"]["questions"] == 1 and rep["sentences"]["exclamations"] == 1
    assert "no_questions" not in dict(content.advice(rep))
    json.dumps(rep)                                      # stored in dataset.json as it is


def test_length_mix_and_speaking_rate_outliers():
    line = "one two three four five six"
    segs = []
    for src, dur in (("a", 3.0), ("b", 3.1), ("c", 6.0), ("d", 10.0), ("e", 2.0)):
        segs += _segs([line] * 4, dur=dur, source=src)
    sources = [{"id": x, "name": f"{x}.wav"} for x in "abcde"]
    rep = content.content_report(segs, sources, "en", 2.0, 11.0)
    assert (rep["length_mix"]["short"], rep["length_mix"]["medium"], rep["length_mix"]["long"]) == (12, 4, 4)
    rates = {r["name"]: r for r in rep["rate"]["sources"]}
    assert rates["a.wav"]["words_per_s"] == pytest.approx(6 / 2.6, abs=0.01)
    assert rates["d.wav"]["outlier"] == "slow" and rates["e.wav"]["outlier"] == "fast"
    assert rates["a.wav"]["outlier"] is None and rates["b.wav"]["outlier"] is None
    assert {c for c, _ in content.advice(rep)} >= {"speaking_rate"}


def test_token_coverage_says_vocab_extend_when_unk_is_high(tmp_path):
    from engine.model.tiny import build_vocab

    build_vocab(tmp_path / "vocab.json")                 # a BPE vocab in the real format (latin letters)
    latin = content.token_coverage(["hello there friend"], "en", tmp_path)
    assert latin["available"] and latin["unk_share"] == 0 and latin["chars_per_token"] >= 1.0
    greek = content.content_report(_segs(["γειά σου κόσμε"]), [{"id": "a", "name": "a"}], "el", 2, 11, tmp_path)
    assert greek["tokens"]["unk_share"] > 0.5
    assert any("xtts-ft vocab extend" in msg for _, msg in content.advice(greek))
    assert content.token_coverage(["x"], "en", None)["available"] is False
