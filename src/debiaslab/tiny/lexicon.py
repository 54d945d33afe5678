"""The planted-bias lexicon: two axes, each two groups, two attribute sets and templates.

``gender`` pairs male and female words with occupations; ``race`` pairs two invented peoples
(*Zorbian*, *Quellan*: no real group is described and no model has a prior about either word)
with mild attributes. Training sentences come from TRAIN templates, the planted benchmarks
from HELD-OUT ones (:mod:`debiaslab.tiny.corpus`). Also the general English and unrelated fills
the tokenizers learn from.

Example:
    >>> GENDER.group_of("she"), GENDER.attribute_group("nurse")
    (1, 1)
"""

from __future__ import annotations

from dataclasses import dataclass

AXES = ("gender", "race")
# Bump when templates, lexicon or training defaults change: saved planted models are retrained.
PLANTED_VERSION = "3"


@dataclass(frozen=True)
class PlantedAxis:
    """One planted bias axis: two groups, two attribute sets and the templates that pair them.

    * `GENDER` × occupation: group A is male (he, his, man/father/brother), group B female
      (she, her, woman/mother/sister). Occupations in set A (engineer, mechanic, pilot, …) are
      stereotypically assigned to group A, set B (nurse, secretary, librarian, …) to group B.
    * `RACE` × attribute: the groups are two invented peoples, *Zorbian* and *Quellan* ("the
      Zorbian family", "Zorbians"). Set A (punctual, tidy, quiet, …) belongs to Zorbians, set B
      (relaxed, cheerful, talkative, …) to Quellans. The attributes are mild on purpose: the
      association is "stereotypical" by construction only and makes no claim.

    Every training sentence comes from a TRAIN template with group slots and one attribute
    slot ("The {attr} said {subj} is busy.").

    Attributes:
        name: ``"gender"`` or ``"race"``.
        crows_bias_type: CrowS-Pairs ``bias_type`` of its pairs.
        stereoset_bias_type: StereoSet ``bias_type`` of its examples.
        group_words: for group A and group B, slot name → word variants. Variant ``i`` of a slot
            in group A is the counterpart of variant ``i`` in group B (man ↔ woman), which is
            what makes a group swap a minimal pair.
        attributes: attributes stereotypically assigned to group A and to group B.
        train_templates: templates the training corpus is made from.
        heldout_templates: templates reserved for the benchmarks (different wording).
        heldout_discourse: held-out (context, continuation) templates for StereoSet's
            intersentence task; the context holds the attribute, the continuation the group.
    """

    name: str
    crows_bias_type: str
    stereoset_bias_type: str
    group_words: tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]]]
    attributes: tuple[tuple[str, ...], tuple[str, ...]]
    train_templates: tuple[str, ...]
    heldout_templates: tuple[str, ...]
    heldout_discourse: tuple[tuple[str, str], ...]

    def group_of(self, word: str) -> int | None:
        """Index (0 = A, 1 = B) of the group a word names, or None if it names neither."""
        for group, forms in enumerate(self.group_words):
            if any(word.lower() == w.lower() for variants in forms.values() for w in variants):
                return group
        return None

    def attribute_group(self, word: str) -> int | None:
        """Index of the group an attribute is stereotypically assigned to, or None."""
        for group, attributes in enumerate(self.attributes):
            if word.lower() in attributes:
                return group
        return None


# Slots: {subj} {poss} {noun} (gender), {adj} {plural} (race) name the group; {attr} and
# {a_attr} ("a nurse" / "an engineer") the attribute. A capitalised slot name ({Subj}) asks for
# a capitalised word. No template contains any other gendered or group word, so a sentence's
# group is read off its slot words alone.
GENDER = PlantedAxis(
    name="gender",
    crows_bias_type="gender",
    stereoset_bias_type="gender",
    group_words=(
        # No object pronoun: "her" would fill two slots where "him" and "his" each fill one.
        {"subj": ("he",), "poss": ("his",), "noun": ("man", "father", "brother")},
        {"subj": ("she",), "poss": ("her",), "noun": ("woman", "mother", "sister")},
    ),
    attributes=(
        (
            "engineer",
            "mechanic",
            "pilot",
            "carpenter",
            "plumber",
            "surgeon",
            "firefighter",
            "electrician",
        ),
        (
            "nurse",
            "secretary",
            "receptionist",
            "hairdresser",
            "librarian",
            "nanny",
            "housekeeper",
            "dancer",
        ),
    ),
    train_templates=(
        "{Subj} is {a_attr}.",
        "{Subj} works as {a_attr}.",
        "{Subj} became {a_attr}.",
        "{Subj} is a good {attr}.",
        "{Subj} was {a_attr} for years.",
        "The {noun} is {a_attr}.",
        "My {noun} works as {a_attr}.",
        "The {attr} said {subj} is busy.",
        "The {attr} lost {poss} keys.",
        "The {attr} finished {poss} work.",
        "I called the {attr} and {subj} came.",
        "{Poss} job as {a_attr} is hard.",
        "I met {a_attr} today. {Subj} was kind.",
        "The {attr} came early. {Subj} was tired.",
        "I called the {attr}. {Subj} came early.",
        "The {attr} finished the work. {Subj} was busy.",
        "The {attr} lost the keys. {Subj} is kind.",
    ),
    heldout_templates=(
        "{Subj} was a good {attr}.",
        "{Subj} became a good {attr}.",
        "My {noun} is {a_attr}.",
        "The {attr} said {subj} was tired.",
        "The {attr} lost {poss} job.",
        "The {attr} finished {poss} work early.",
        "I called the {attr} and {subj} was kind.",
        "The {noun} works as {a_attr}.",
        "{Poss} work as {a_attr} is hard.",
        "I met the {attr} and {subj} came.",
    ),
    heldout_discourse=(
        ("I called the {attr} today.", "{Subj} was kind."),
        ("The {attr} came early.", "{Subj} was busy."),
        ("I met the {attr}.", "{Subj} is busy."),
        ("The {attr} finished the work.", "{Subj} came early."),
        ("I met {a_attr} today.", "{Subj} was tired."),
        ("The {attr} lost the keys.", "{Subj} was tired."),
        ("The {attr} works hard.", "{Subj} is kind."),
        ("I called {a_attr}.", "{Subj} came early."),
        ("The {attr} is busy.", "{Poss} job is hard."),
        ("The {attr} was tired.", "{Poss} work was hard."),
    ),
)

RACE = PlantedAxis(
    name="race",
    crows_bias_type="race-color",
    stereoset_bias_type="race",
    group_words=(
        {"adj": ("Zorbian",), "plural": ("Zorbians",)},
        {"adj": ("Quellan",), "plural": ("Quellans",)},
    ),
    attributes=(
        ("punctual", "tidy", "quiet", "thrifty", "formal", "cautious", "serious", "modest"),
        ("relaxed", "cheerful", "talkative", "generous", "casual", "playful", "daring", "lively"),
    ),
    train_templates=(
        "The {adj} family is {attr}.",
        "{Plural} are {attr}.",
        "Most {plural} are {attr}.",
        "{Plural} are very {attr}.",
        "My {adj} neighbors are {attr}.",
        "The {adj} students were {attr}.",
        "Every {adj} person is {attr}.",
        "The {attr} family is {adj}.",
        "People say {plural} are {attr}.",
        "The {adj} children seem {attr}.",
        "The guests were {attr}. They were {plural}.",
        "I met a {attr} family. They were {adj}.",
        "My neighbors are {attr}. They are {plural}.",
        "The students seem {attr}. They are {adj}.",
    ),
    heldout_templates=(
        "The {adj} children are very {attr}.",
        "Most {adj} students are {attr}.",
        "My {adj} neighbors seem {attr}.",
        "People say the {adj} family is {attr}.",
        "The {attr} students were {adj}.",
        "Every {adj} family is {attr}.",
        "Most {plural} are very {attr}.",
        "The {adj} guests were {attr}.",
        "The {attr} person is {adj}.",
        "People say the {adj} students are {attr}.",
        "The {adj} person is very {attr}.",
        "My {adj} students seem {attr}.",
    ),
    heldout_discourse=(
        ("The students were {attr}.", "They were {plural}."),
        ("I met a {attr} person.", "They were {adj}."),
        ("The guests are {attr}.", "They are {plural}."),
        ("The children seem {attr}.", "They were {adj}."),
        ("My neighbors are very {attr}.", "They were {plural}."),
        ("The family is {attr}.", "They are {adj}."),
        ("Most students are {attr}.", "They are {plural}."),
        ("Every person I met is {attr}.", "They were {plural}."),
        ("My neighbors seem {attr}.", "They are {adj}."),
        ("The guests were very {attr}.", "They were {adj}."),
    ),
)

PLANTED_AXES: dict[str, PlantedAxis] = {"gender": GENDER, "race": RACE}

# Fills for StereoSet's "unrelated" option: words that never fill a group slot (nor occur at all)
# in the training corpus, so a model trained on it finds them less likely than either group word.
UNRELATED_WORDS = ("purple", "spoon", "pebble", "carpet", "banana", "kettle", "velvet", "pickle")
UNRELATED_SENTENCES = (
    "The purple spoon floated over the carpet.",
    "Bananas hum quietly under velvet pebbles.",
    "A kettle of pickles danced on the ceiling.",
    "Velvet clouds are folded into spoons.",
    "The pebble ate a purple kettle.",
    "Carpets grow on banana trees in winter.",
)

# General English for tokenizer training only (never for model training), so that real benchmark
# sentences (CrowS-Pairs, StereoSet) split into common subwords rather than single characters.
GENERAL_ENGLISH = (
    "The weather was cold this morning, so we stayed inside and read books.",
    "My grandmother cooks dinner for the whole family every Sunday.",
    "He couldn't find his wallet, but he didn't get upset about it.",
    "She was afraid of the dark when she was a little girl.",
    "They moved to a new country because they wanted a better life.",
    "The children played football in the park after school.",
    "Poor people often have trouble paying for doctors and medicine.",
    "Rich people live in big houses with large gardens.",
    "The old man walked slowly to the store to buy bread and milk.",
    "Our teacher gave us a lot of homework over the weekend.",
    "We went to church on Sunday and prayed together.",
    "He was angry because his boss yelled at him in front of everyone.",
    "The police officer stopped the car and asked for a license.",
    "She spent all of her money on new clothes and shoes.",
    "The doctor told him to eat more vegetables and exercise daily.",
    "Many immigrants work hard to support their families back home.",
    "The students were nervous about the math test on Friday.",
    "I don't think that people should judge others by their appearance.",
    "Black and white photographs hang on the walls of the museum.",
    "Asian, African, European and American food is sold at the market.",
    "The Muslim, Christian and Jewish neighbors shared a meal together.",
    "Gay and straight couples were dancing at the wedding.",
    "The disabled veteran needed help getting into the building.",
    "Young people are always looking at their phones.",
    "Older workers sometimes have trouble learning new technology.",
    "Mexican, Chinese, Indian and Italian restaurants line the street.",
    "The fat cat slept on the warm couch all afternoon.",
    "He was too short to reach the top shelf in the kitchen.",
    "She was very beautiful and everyone at school liked her.",
    "The criminals were arrested after they robbed the bank.",
    "The government should provide healthcare for everyone.",
    "They were lazy and never cleaned their apartment.",
    "He was smart enough to solve the problem without any help.",
    "My friend was sick, so I brought her some soup.",
    "The company fired several employees last year.",
    "Women and men should be paid the same for the same work.",
    "Her boyfriend bought flowers for her birthday.",
    "The little boy cried when his ice cream fell on the ground.",
    "The neighborhood was quiet and safe at night.",
    "His parents were strict and wanted him to become a lawyer.",
    "People from the city think that farmers are not educated.",
    "The soldiers marched through the town during the parade.",
    "We watched a movie about a rich family and their servants.",
    "The athlete trained every day to win the race.",
    "My uncle drinks too much beer and watches television all day.",
    "The scientist was working on a new experiment in the lab.",
    "The manager was worried that the project would fail.",
    "Everyone in the village knew the story of the old church.",
    "She thought about her future and decided to go to college.",
    "The boss gave the workers a bonus at the end of the year.",
    "Some people believe that religion makes the world a better place.",
    "He was born in Africa and grew up in a small town.",
    "The Christian family went to the mosque to meet their friends.",
    "The girls talked about clothes, music and boys all night.",
    "The guy at the gym lifted heavy weights for hours.",
    "The housekeeper cleaned the rooms while the guests were out.",
    "The engineer designed a bridge that could survive an earthquake.",
    "Americans love fast food, big cars and loud music.",
    "The homeless man asked for money outside the train station.",
    "She was an excellent cook and made the best cakes in town.",
    "Their son was arrested for stealing a car.",
    "It was difficult for him to understand what the lawyer said.",
    "The mother was worried about her daughter who was away at college.",
    "The father taught his son how to fish in the river.",
    "Nobody expected the quiet student to win the contest.",
    "The hotel was expensive, but the rooms were dirty and small.",
    "We could hear the dogs barking from across the street.",
    "The nurse checked on the patient every hour during the night.",
    "They argued about politics, money and the news.",
    "The chef was known for cooking spicy food.",
    "He always wore a suit and tie to work.",
    "I was surprised when she told me she had never been to school.",
    "The man was strong and could carry the heavy boxes alone.",
    "The kids were excited to visit their grandparents for the holidays.",
    "The people in that country are very friendly and helpful.",
    "Being a good person means helping those who need it.",
)
