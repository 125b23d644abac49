"""The two text tools the official CHAIR code calls, ported so that scoring needs no download.

``utils/chair.py`` (LisaAnne/Hallucination, whose requirements pin nltk 3.2.5 and pattern 3.6) runs
``nltk.word_tokenize(caption.lower())`` and then ``pattern.en.singularize`` on every token.

* `word_tokenize`: nltk 3.2.5's ``word_tokenize`` is ``sent_tokenize`` (Punkt with a trained English
  model that nltk downloads at run time), then the Treebank word tokenizer with nltk's Unicode quote
  additions on each sentence. The sentences decide words twice: the Treebank tokenizer splits a
  period off the *last* word of a sentence only, and Punkt cuts each sentence from the text as it
  stands, so the Treebank rules that need a literal space (a trailing ``'``, ``'s``) do not fire
  across a newline ("vessels'\\nseat" keeps "vessels'" whole, and no boat is seen). Both are ported
  with their rules; `sentences` is Punkt without the model's tables: every period-final word ends a
  sentence unless it is an ellipsis, or a number or an initial before a lower-case word. The model
  also knows abbreviations ("dr.", "st.") that continue a sentence; that list is not ported.
* `singularize`: pattern 3.6's rule list, ported with its quirks, because they decide which
  mentions count: "bus" becomes "bu" (so a singular "bus" is not seen, "buses" is), "glass" becomes
  "glas" (hence the official "wine glas" merge), "ties" becomes "ty", "doggies" stays "doggies".
  WordNet lemmatisation (lmms-eval's choice) needs a corpus download and gives other words.

nltk (Apache 2.0) and pattern (BSD 3-clause) are credited for the rule tables below.
"""

from __future__ import annotations

import re

# -- nltk 3.2.5 Treebank word tokenizer, with the Unicode quote rules word_tokenize inserts first ------

_STARTING_QUOTES = [
    (re.compile("([«“‘])"), r" \1 "),
    (re.compile(r'^\"'), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r'([ (\[{<])"'), r"\1 `` "),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$"), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.\.\."), r" ... "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
]
_PARENS_BRACKETS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_ENDING_QUOTES = [
    (re.compile("([»”’])"), r" \1 "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"(\S)(\'\')"), r"\1 \2 "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_CONTRACTIONS = [re.compile(pattern) for pattern in (
    r"(?i)\b(can)(?#X)(not)\b", r"(?i)\b(d)(?#X)('ye)\b", r"(?i)\b(gim)(?#X)(me)\b", r"(?i)\b(gon)(?#X)(na)\b",
    r"(?i)\b(got)(?#X)(ta)\b", r"(?i)\b(lem)(?#X)(me)\b", r"(?i)\b(mor)(?#X)('n)\b", r"(?i)\b(wan)(?#X)(na)\s",
    r"(?i) ('t)(?#X)(is)\b", r"(?i) ('t)(?#X)(was)\b",
)]


def treebank_tokenize(sentence: str) -> list[str]:
    """nltk 3.2.5 ``TreebankWordTokenizer.tokenize`` of one sentence, as ``word_tokenize`` set it up."""
    text = sentence
    for pattern, substitution in _STARTING_QUOTES + _PUNCTUATION:
        text = pattern.sub(substitution, text)
    for pattern, substitution in (_PARENS_BRACKETS, _DOUBLE_DASHES):
        text = pattern.sub(substitution, text)
    text = f" {text} "
    for pattern, substitution in _ENDING_QUOTES:
        text = pattern.sub(substitution, text)
    for pattern in _CONTRACTIONS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()


# -- nltk 3.2.5 Punkt sentence splitter (nltk/tokenize/punkt.py), with no trained parameters ---------

# PunktLanguageVars: characters that cannot be inside a word, multi-character punctuation, and the
# characters a word may not start with.
_NON_WORD = r"(?:[?!)\";}\]\*:@\'\({\[])"
_MULTI_CHAR = r"(?:\-{2,}|\.{2,}|(?:\.\s){2,}\.)"
_WORD_START = r"[^\(\"\`{\[:;&\#\*@\)}\]\-,]"
_PUNKT_WORD = re.compile(
    rf"{_MULTI_CHAR}|(?={_WORD_START})\S+?(?=\s|$|{_NON_WORD}|{_MULTI_CHAR}|,(?=$|\s|{_NON_WORD}|{_MULTI_CHAR}))|\S")
# A candidate end: a word ending in . ? or !, then punctuation or whitespace and a next token.
_PERIOD_CONTEXT = re.compile(rf"\S*[.?!](?=(?P<after_tok>{_NON_WORD}|\s+(?P<next_tok>\S+)))")
# Closing quotes and brackets after the end go back to the sentence they close.
_BOUNDARY_REALIGNMENT = re.compile(r"[\"')\]}]+?(?:\s+|(?=--)|$)", re.MULTILINE)
_ELLIPSIS = re.compile(r"\.\.+$")
_INITIAL = re.compile(r"[^\W\d]\.$")
_NUMBER = re.compile(r"^-?[\.,]?\d[\d,\.-]*\.?$")


def _punkt_words(text: str) -> list[str]:
    """``PunktBaseClass._tokenize_words``: Punkt's own word split, line by line."""
    return [word for line in text.split("\n") for word in _PUNKT_WORD.findall(line)]


def _not_a_sentence_start(word: str) -> bool:
    """``_ortho_heuristic`` is False: with no orthographic statistics, punctuation or a lower-case word."""
    return word in (";", ":", ",", ".", "!", "?") or word[0].islower()


def _is_sentence_break(word: str, following: str) -> bool:
    """Punkt's first and second annotation passes for `word`, given the word after it.

    With no trained tables no word is an abbreviation or a collocation, so a period-final word ends
    the sentence, unless it is an ellipsis, or an initial or a number followed by a word that is
    not a sentence start (an initial also before a capital: "j. Bach")."""
    if word in (".", "?", "!"):
        return True
    if _ELLIPSIS.match(word) or not word.endswith(".") or word.endswith(".."):
        return False
    initial, number = bool(_INITIAL.match(word)), bool(_NUMBER.match(word.lower()))
    if (initial or number) and _not_a_sentence_start(following):
        return False
    return not (initial and following[0].isupper())


def _contains_sentence_break(context: str) -> bool:
    """``text_contains_sentbreak``: a break on some word of `context` other than its last."""
    words = _punkt_words(context)
    return any(_is_sentence_break(word, following) for word, following in zip(words, words[1:]))


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """``_slices_from_text``: the next sentence starts at the next token (or at the punctuation right
    after the end); the last one stops before trailing whitespace."""
    spans, start = [], 0
    for match in _PERIOD_CONTEXT.finditer(text):
        if _contains_sentence_break(match.group() + match.group("after_tok")):
            spans.append((start, match.end()))
            start = match.start("next_tok") if match.group("next_tok") else match.end()
    spans.append((start, len(text.rstrip())))
    return spans


def _realign(text: str, spans: list[tuple[int, int]]) -> list[str]:
    """``_realign_boundaries``: closing quotes and brackets (and the whitespace after them) that open
    the next span end the previous sentence instead."""
    found, shift = [], 0
    for (start, end), following in zip(spans, spans[1:] + [None]):
        start += shift
        closing = following and _BOUNDARY_REALIGNMENT.match(text[following[0]:following[1]])
        if closing:
            found.append(text[start:following[0] + len(closing.group().rstrip())])
            shift = closing.end()
        else:
            shift = 0
            if text[start:end]:
                found.append(text[start:end])
    return found


def sentences(text: str) -> list[str]:
    """nltk 3.2.5 ``sent_tokenize(text)`` without the English model's tables: each sentence is cut
    from `text` as it stands, inner whitespace kept (a newline stays a newline)."""
    return _realign(text, _sentence_spans(text))


def word_tokenize(text: str) -> list[str]:
    return [token for sentence in sentences(text) for token in treebank_tokenize(sentence)]


# -- pattern 3.6 pattern.en.singularize ---------------------------------------------------------------

# pattern/text/en/inflect.py ``plural_prepositions``, all 40 (the same in pattern 2.6 and 3.6): a
# hyphenated word whose second part is one of them singularizes its first part ("passers-by").
_PLURAL_PREPOSITIONS = {
    "about", "before", "during", "of", "till", "above", "behind", "except", "off", "to", "across", "below", "for",
    "on", "under", "after", "beneath", "from", "onto", "until", "among", "beside", "in", "out", "unto", "around",
    "besides", "into", "over", "upon", "at", "between", "near", "since", "with", "athwart", "betwixt",
    "beyond", "but", "by",
}
_SINGULAR_RULES = [(re.compile(pattern), replacement) for pattern, replacement in (
    (r"(?i)(.)ae$", "\\1a"), (r"(?i)(.)itis$", "\\1itis"), (r"(?i)(.)eaux$", "\\1eau"),
    (r"(?i)(quiz)zes$", "\\1"), (r"(?i)(matr)ices$", "\\1ix"), (r"(?i)(ap|vert|ind)ices$", "\\1ex"),
    (r"(?i)^(ox)en", "\\1"), (r"(?i)(alias|status)es$", "\\1"), (r"(?i)([octop|vir])i$", "\\1us"),
    (r"(?i)(cris|ax|test)es$", "\\1is"), (r"(?i)(shoe)s$", "\\1"), (r"(?i)(o)es$", "\\1"), (r"(?i)(bus)es$", "\\1"),
    (r"(?i)([m|l])ice$", "\\1ouse"), (r"(?i)(x|ch|ss|sh)es$", "\\1"), (r"(?i)(m)ovies$", "\\1ovie"),
    (r"(?i)(.)ombies$", "\\1ombie"), (r"(?i)(s)eries$", "\\1eries"), (r"(?i)([^aeiouy]|qu)ies$", "\\1y"),
    # -f and -fe plurals in -ves
    (r"([aeo]l)ves$", "\\1f"), (r"([^d]ea)ves$", "\\1f"), (r"arves$", "arf"), (r"erves$", "erve"),
    (r"([nlw]i)ves$", "\\1fe"), (r"(?i)([lr])ves$", "\\1f"), (r"([aeo])ves$", "\\1ve"), (r"(?i)(sive)s$", "\\1"),
    (r"(?i)(tive)s$", "\\1"), (r"(?i)(hive)s$", "\\1"), (r"(?i)([^f])ves$", "\\1fe"),
    # -ses
    (r"(?i)(^analy)ses$", "\\1sis"),
    (r"(?i)((a)naly|(b)a|(d)iagno|(p)arenthe|(p)rogno|(s)ynop|(t)he)ses$", "\\1\\2sis"),
    (r"(?i)(.)opses$", "\\1opsis"), (r"(?i)(.)yses$", "\\1ysis"), (r"(?i)(h|d|r|o|n|b|cl|p)oses$", "\\1ose"),
    (r"(?i)(fruct|gluc|galact|lact|ket|malt|rib|sacchar|cellul)ose$", "\\1ose"), (r"(?i)(.)oses$", "\\1osis"),
    # -a
    (r"(?i)([ti])a$", "\\1um"), (r"(?i)(n)ews$", "\\1ews"), (r"(?i)s$", ""),
)]
_SINGULAR_UNINFLECTED = {
    "bison", "debris", "headquarters", "pincers", "trout", "bream", "diabetes", "herpes", "pliers", "tuna",
    "breeches", "djinn", "high-jinks", "proceedings", "whiting", "britches", "eland", "homework", "rabies",
    "wildebeest", "carp", "elk", "innings", "salmon", "chassis", "flounder", "jackanapes", "scissors", "christmas",
    "gallows", "mackerel", "series", "clippers", "georgia", "measles", "shears", "cod", "graffiti", "mews",
    "species", "contretemps", "mumps", "swine", "corps", "news", "swiss",
}
_SINGULAR_UNCOUNTABLE = {
    "advice", "equipment", "happiness", "luggage", "news", "software", "bread", "fruit", "information",
    "mathematics", "progress", "understanding", "butter", "furniture", "ketchup", "mayonnaise", "research", "water",
    "cheese", "garbage", "knowledge", "meat", "rice", "electricity", "gravel", "love", "mustard", "sand",
}
# pattern writes "^pie" and "^tie" but compares them as plain text, so they never match.
_SINGULAR_IE = {
    "alergie", "cutie", "hoagie", "newbie", "softie", "veggie", "auntie", "doggie", "hottie", "nightie", "sortie",
    "weenie", "beanie", "eyrie", "indie", "oldie", "stoolie", "yuppie", "birdie", "freebie", "junkie", "^pie",
    "sweetie", "zombie", "bogie", "goonie", "laddie", "pixie", "techie", "bombie", "groupie", "laramie", "quickie",
    "^tie", "collie", "hankie", "lingerie", "reverie", "toughie", "cookie", "hippie", "meanie", "rookie", "valkyrie",
}
_SINGULAR_IRREGULAR = {
    "atlantes": "atlas", "atlases": "atlas", "axes": "axe", "beeves": "beef", "brethren": "brother",
    "children": "child", "corpora": "corpus", "corpuses": "corpus", "ephemerides": "ephemeris", "feet": "foot",
    "ganglia": "ganglion", "geese": "goose", "genera": "genus", "genii": "genie", "graffiti": "graffito",
    "helves": "helve", "kine": "cow", "leaves": "leaf", "loaves": "loaf", "men": "man", "mongooses": "mongoose",
    "monies": "money", "moves": "move", "mythoi": "mythos", "numena": "numen", "occipita": "occiput",
    "octopodes": "octopus", "opera": "opus", "opuses": "opus", "our": "my", "oxen": "ox", "penes": "penis",
    "penises": "penis", "people": "person", "sexes": "sex", "soliloquies": "soliloquy", "teeth": "tooth",
    "testes": "testis", "trilbys": "trilby", "turves": "turf", "zoa": "zoon",
}


def singularize(word: str) -> str:
    """pattern.en's ``singularize(word)`` (noun, no custom table), rule for rule."""
    if "-" in word:
        parts = word.split("-")
        if parts[1] in _PLURAL_PREPOSITIONS:
            return singularize(parts[0]) + "-" + "-".join(parts[1:])
    if word.endswith("'"):
        return singularize(word[:-1]) + "'s"
    lower = word.lower()
    # pattern's test is "some listed word ends with this one": "ice" is kept because of "rice".
    if any(listed.endswith(lower) for listed in _SINGULAR_UNINFLECTED | _SINGULAR_UNCOUNTABLE):
        return word
    if any(lower.endswith(listed + "s") for listed in _SINGULAR_IE):
        return lower  # pattern returns the word unchanged here, plural and all
    for plural, singular in _SINGULAR_IRREGULAR.items():
        if lower.endswith(plural):
            return re.sub("(?i)" + plural + "$", singular, word)
    for pattern, replacement in _SINGULAR_RULES:
        match = pattern.search(word)
        if match:
            # Python 2's re.sub refused to expand a group that took no part in the match; pattern drops it.
            for index, group in enumerate(match.groups(), start=1):
                if group is None:
                    replacement = replacement.replace("\\" + str(index), "")
            return pattern.sub(replacement, word)
    return word
