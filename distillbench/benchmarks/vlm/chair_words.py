"""The two text tools the official CHAIR code calls, ported so that scoring needs no download.

``utils/chair.py`` (LisaAnne/Hallucination, whose requirements pin nltk 3.2.5 and pattern 3.6) runs
``nltk.word_tokenize(caption.lower())`` and then ``pattern.en.singularize`` on every token.

* `word_tokenize`: nltk 3.2.5's ``word_tokenize`` is the Punkt sentence splitter (a trained English
  model that nltk downloads at run time) followed by the Treebank word tokenizer with nltk's Unicode
  quote additions. The Treebank rules are ported here as they were. Punkt is not: its only effect on
  the words is that the Treebank tokenizer splits a period off the *last* word of each sentence, and
  Punkt ends a sentence after every period-final word that is not a known abbreviation, a number or
  an initial. `sentences` splits after every period-final chunk, which differs from Punkt only on
  such tokens ("dr.", "2."), none of which is a COCO object word.
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
_SENTENCE_END = re.compile(r"\.[\]\)}>\"'»”’]*$")


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


def sentences(text: str) -> list[str]:
    """Sentences, ended after each whitespace-separated chunk that ends in a period (closing quotes
    and brackets after it stay with it): Punkt's decision for every word that is not an abbreviation."""
    found, current = [], []
    for chunk in text.split():
        current.append(chunk)
        if _SENTENCE_END.search(chunk):
            found.append(" ".join(current))
            current = []
    if current:
        found.append(" ".join(current))
    return found


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
