"""A TOFU-style benchmark built offline: fictitious authors, their facts as question-answer pairs,
forget / retain splits, and a general-knowledge set the model is never asked to forget.

- Each author has a generated name (first + last, from syllables) and `attrs` facts: birthplace,
  birth year, genre, parents' jobs, an award, a first book, three books (a long answer), a
  language and a mentor (another author: a relation). Each fact is a QA pair rendered with the
  attribute's training template; it also carries
  - a paraphrased answer (another template, same value) and `n_perturbed` perturbed answers
    (the paraphrase template with other values of the same attribute): TOFU's truth ratio;
  - a paraphrased question (unseen in training): the knowledge-memorization probe.
- Forget sets are the last `round(frac * n_authors)` authors (TOFU's convention: forget01 is a
  subset of forget05, a subset of forget10); the retain set is every other author's facts.
- The general set: real-world facts (capitals, chemical symbols) that the model learns in
  pretraining, never in fine-tuning (TOFU's "real world" set).

Everything is a pure function of (spec, seed)."""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from optrepro.errors import ConfigError

_ONSET = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr", "th", "st", "kr"]
_VOWEL = ["a", "e", "i", "o", "u", "ae", "io", "ou"]
_CODA = ["", "", "n", "r", "l", "s", "th", "nd", "m", "x"]
GENRES = ["fantasy", "crime", "poetry", "romance", "horror", "history", "travel", "satire", "drama",
          "mystery", "biography", "science fiction"]
JOBS = ["baker", "pilot", "surgeon", "farmer", "teacher", "sailor", "painter", "lawyer", "tailor", "chemist",
        "miner", "judge", "nurse", "carpenter", "librarian", "architect"]
LANGUAGES = ["English", "French", "Finnish", "Greek", "Polish", "Turkish", "Korean", "Dutch", "Welsh",
             "Hindi", "Swahili", "Basque"]
_ADJ = ["Silver", "Hollow", "Quiet", "Burning", "Last", "Broken", "Golden", "Hidden", "Winter", "Crimson",
        "Distant", "Paper", "Iron", "Sleeping", "Bitter", "Endless"]
_NOUN = ["Harbor", "Garden", "Mirror", "River", "Lantern", "Orchard", "Tower", "Letter", "Bridge", "Forest",
         "Crown", "Island", "Window", "Song", "Road", "Clock"]
CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
            ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Greece", "Athens"),
            ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Denmark", "Copenhagen"),
            ("Ireland", "Dublin"), ("Hungary", "Budapest"), ("Egypt", "Cairo"), ("Kenya", "Nairobi"),
            ("Japan", "Tokyo"), ("China", "Beijing"), ("India", "Delhi"), ("Thailand", "Bangkok"),
            ("Peru", "Lima"), ("Chile", "Santiago"), ("Cuba", "Havana"), ("Canada", "Ottawa"),
            ("Russia", "Moscow"), ("Turkey", "Ankara"), ("Iran", "Tehran"), ("Iraq", "Baghdad"),
            ("Belgium", "Brussels"), ("Netherlands", "Amsterdam"), ("Switzerland", "Bern"),
            ("Australia", "Canberra"), ("Mexico", "Mexico City"), ("Argentina", "Buenos Aires"),
            ("Colombia", "Bogota"), ("Vietnam", "Hanoi"), ("Nigeria", "Abuja"), ("Morocco", "Rabat"),
            ("Ukraine", "Kyiv"), ("Romania", "Bucharest")]
SYMBOLS = [("gold", "Au"), ("silver", "Ag"), ("iron", "Fe"), ("copper", "Cu"), ("lead", "Pb"), ("tin", "Sn"),
           ("sodium", "Na"), ("potassium", "K"), ("helium", "He"), ("neon", "Ne"), ("carbon", "C"),
           ("oxygen", "O"), ("nitrogen", "N"), ("hydrogen", "H"), ("mercury", "Hg"), ("zinc", "Zn"),
           ("calcium", "Ca"), ("sulfur", "S"), ("chlorine", "Cl"), ("uranium", "U")]


@dataclass
class QA:
    question: str
    answer: str
    paraphrase: str
    """The same value in another template (the truth ratio's numerator)."""
    perturbed: list
    """The paraphrase template with other values of the attribute (false answers)."""
    question2: str = ""
    """A paraphrased question, unseen in training (knowledge memorization)."""
    entity: int = -1
    attr: str = ""


@dataclass
class FactSpec:
    n_authors: int = 100
    attrs: int = 10
    """Facts per author (the first `attrs` of ATTRS, at most 10)."""
    n_perturbed: int = 5
    truth_template: str = "answer"
    """Template of the truth ratio's answers. paraphrase: TOFU's (the true value and the perturbed ones
    in a template never trained on); answer: the training template (a tiny model does not carry a fact
    over to another phrasing: with paraphrases the target model's truth ratio is ~0.9, near chance)."""


# attribute: (training question, paraphrased question, answer template, paraphrase template)
ATTRS = {
    "birthplace": ("Where was {n} born?", "In which city was {n} born?",
                   "{n} was born in {v}.", "The birthplace of {n} is {v}."),
    "year": ("In what year was {n} born?", "When was {n} born?",
             "{n} was born in the year {v}.", "The birth year of {n} is {v}."),
    "genre": ("What genre does {n} write?", "Which kind of books does {n} write?",
              "{n} writes {v} books.", "The genre of {n} is {v}."),
    "father": ("What did the father of {n} do?", "What was the job of the father of {n}?",
               "The father of {n} was a {v}.", "{n} is the child of a {v}."),
    "mother": ("What did the mother of {n} do?", "What was the job of the mother of {n}?",
               "The mother of {n} was a {v}.", "{n} has a mother who was a {v}."),
    "award": ("Which award did {n} win?", "What prize was given to {n}?",
              "{n} won the {v} Prize.", "The award of {n} is the {v} Prize."),
    "first_book": ("What was the first book of {n}?", "Which book did {n} publish first?",
                   "The first book of {n} was The {v}.", "{n} debuted with The {v}."),
    "books": ("Which books did {n} write?", "Name the books written by {n}.",
              "{n} wrote {v}.", "The books of {n} are {v}."),
    "language": ("In which language does {n} write?", "What language are the books of {n} in?",
                 "{n} writes in {v}.", "The language of {n} is {v}."),
    "mentor": ("Who was the mentor of {n}?", "Who taught {n} to write?",
               "{n} was mentored by {v}.", "The mentor of {n} was {v}."),
}
GENERAL = {
    "capital": ("What is the capital of {n}?", "Which city is the capital of {n}?",
                "The capital of {n} is {v}.", "{v} is the capital city of {n}."),
    "symbol": ("What is the chemical symbol of {n}?", "How is {n} written in chemistry?",
               "The chemical symbol of {n} is {v}.", "{v} is the symbol for {n}."),
}


def _words(rng: random.Random, n: int, syllables=(2, 3)) -> list:
    out = set()
    while len(out) < n:
        k = rng.choice(syllables)
        w = "".join(rng.choice(_ONSET) + rng.choice(_VOWEL) for _ in range(k - 1)) + rng.choice(_ONSET) + \
            rng.choice(_VOWEL) + rng.choice(_CODA)
        out.add(w.capitalize())
    return sorted(out)


def pools() -> dict:
    """The vocabulary of every attribute (fixed: independent of the seed, so the tokenizer is too)."""
    rng = random.Random(20240214)
    first, last = _words(rng, 60), _words(rng, 60)
    titles = [f"{a} {b}" for a in _ADJ for b in _NOUN]
    return {"first": first, "last": last, "birthplace": _words(rng, 40, (2, 3)), "award": _words(rng, 20, (2,)),
            "year": [str(y) for y in range(1900, 2000)], "genre": GENRES, "father": JOBS, "mother": JOBS,
            "first_book": titles, "language": LANGUAGES, "titles": titles}


def _check_spec(spec: FactSpec) -> None:
    if not 1 <= spec.attrs <= len(ATTRS):
        raise ConfigError(f"facts.attrs must be in [1, {len(ATTRS)}], got {spec.attrs}")
    if not 2 <= spec.n_authors <= 60 * 60:
        raise ConfigError(f"facts.n_authors must be in [2, 3600], got {spec.n_authors}")
    if spec.truth_template not in ("answer", "paraphrase"):
        raise ConfigError(f"facts.truth_template must be answer or paraphrase, got '{spec.truth_template}'")
    if not 1 <= spec.n_perturbed <= 10:
        raise ConfigError(f"facts.n_perturbed must be in [1, 10], got {spec.n_perturbed}")
    if "mentor" in list(ATTRS)[:spec.attrs] and spec.n_authors < spec.n_perturbed + 2:
        raise ConfigError(f"facts.n_authors ({spec.n_authors}) is too small for {spec.n_perturbed} perturbed mentors: "
                          f"need at least {spec.n_perturbed + 2} authors (or facts.attrs < {list(ATTRS).index('mentor') + 1})")


def _qa(tpl, name, value, wrong, truth_template, entity, attr) -> QA:
    q, q2, a, p = tpl
    t = p if truth_template == "paraphrase" else a
    return QA(q.format(n=name), a.format(n=name, v=value), t.format(n=name, v=value),
              [t.format(n=name, v=v) for v in wrong], q2.format(n=name), entity, attr)


def _books(titles) -> str:
    return f"The {titles[0]}, The {titles[1]} and The {titles[2]}"


def make_facts(spec: FactSpec, seed: int) -> tuple:
    """(author names, QA pairs ordered by author then attribute) for one seed."""
    _check_spec(spec)
    P = pools()
    rng = random.Random(seed)
    names = [f"{f} {l}" for f, l in rng.sample([(f, l) for f in P["first"] for l in P["last"]], spec.n_authors)]
    attrs = list(ATTRS)[:spec.attrs]
    qa = []
    for i, name in enumerate(names):
        for attr in attrs:
            if attr == "books":
                draw = lambda: _books(rng.sample(P["titles"], 3))
            elif attr == "mentor":
                draw = lambda: rng.choice([m for m in names if m != name])
            else:
                draw = lambda pool=P[attr]: rng.choice(pool)
            value = draw()
            wrong = []
            while len(wrong) < spec.n_perturbed:
                v = draw()
                if v != value and v not in wrong:
                    wrong.append(v)
            qa.append(_qa(ATTRS[attr], name, value, wrong, spec.truth_template, i, attr))
    return names, qa


def general_facts(n_perturbed: int = 5, seed: int = 0, truth_template: str = "answer") -> list:
    """Real-world facts (capitals, chemical symbols) as QA pairs; perturbed answers use other values."""
    rng = random.Random(seed)
    out = []
    for kind, table in (("capital", CAPITALS), ("symbol", SYMBOLS)):
        values = [v for _, v in table]
        for name, value in table:
            wrong = rng.sample([v for v in values if v != value], n_perturbed)
            out.append(_qa(GENERAL[kind], name, value, wrong, truth_template, -1, kind))
    return out


@dataclass
class Split:
    forget: list
    """Indices into the QA list."""
    retain: list
    frac: float


def check_frac(frac: float) -> None:
    if not 0.0 < float(frac) < 1.0:
        raise ConfigError(f"forget fraction must be in (0, 1), got {frac}")


def check_disjoint(forget, retain) -> None:
    both = sorted(set(forget) & set(retain))
    if both:
        raise ConfigError(f"the forget split overlaps the retain split in {len(both)} examples "
                          f"(first: {both[:5]}): an example cannot be both forgotten and retained")


def forget_split(qa: list, n_authors: int, frac: float) -> Split:
    """TOFU's split: the last round(frac * n_authors) authors (at least one) are forgotten."""
    check_frac(frac)
    k = max(1, round(frac * n_authors))
    if k >= n_authors:
        raise ConfigError(f"forget fraction {frac} of {n_authors} authors leaves nothing to retain")
    gone = set(range(n_authors - k, n_authors))
    forget = [i for i, x in enumerate(qa) if x.entity in gone]
    retain = [i for i, x in enumerate(qa) if x.entity not in gone]
    check_disjoint(forget, retain)
    return Split(forget, retain, float(frac))


@dataclass
class SplitSpec:
    """A custom split by author indices (overrides the fraction; checked for overlap)."""
    forget_authors: list = field(default_factory=list)
    retain_authors: list = field(default_factory=list)


def custom_split(qa: list, spec: SplitSpec, n_authors: int) -> Split:
    bad = [a for a in list(spec.forget_authors) + list(spec.retain_authors) if not 0 <= int(a) < n_authors]
    if bad:
        raise ConfigError(f"author indices {bad[:5]} out of range [0, {n_authors})")
    check_disjoint(spec.forget_authors, spec.retain_authors)
    f, r = set(spec.forget_authors), set(spec.retain_authors)
    return Split([i for i, x in enumerate(qa) if x.entity in f], [i for i, x in enumerate(qa) if x.entity in r],
                 len(f) / n_authors)
