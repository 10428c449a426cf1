"""One canonical expression taxonomy and every dataset's native label codes.

Datasets number their classes differently (RAF-DB starts at Surprise, AffectNet
at Neutral, Aff-Wild2 puts Anger second). Everything downstream of `prepare`
speaks only the canonical names below; an experiment then picks a *class set*
(an ordered subset) that fixes the integer ids the network is trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

CANONICAL = (
    "neutral",
    "happiness",
    "sadness",
    "surprise",
    "fear",
    "disgust",
    "anger",
    "contempt",
    "other",
)

# Native code -> canonical name. A value of None means "a valid code that is not
# an expression"; such records are set aside with the reason in NOT_EXPRESSION.
RAFDB_BASIC = {
    1: "surprise",
    2: "fear",
    3: "disgust",
    4: "happiness",
    5: "sadness",
    6: "anger",
    7: "neutral",
}

AFFECTNET = {
    0: "neutral",
    1: "happiness",
    2: "sadness",
    3: "surprise",
    4: "fear",
    5: "disgust",
    6: "anger",
    7: "contempt",
    8: None,  # None
    9: None,  # Uncertain
    10: None,  # No-Face
}

AFFWILD2_EXPR = {
    -1: None,  # invalid frame
    0: "neutral",
    1: "anger",
    2: "disgust",
    3: "fear",
    4: "happiness",
    5: "sadness",
    6: "surprise",
    7: "other",
}

NATIVE_CODES = {"rafdb": RAFDB_BASIC, "affectnet": AFFECTNET, "affwild2": AFFWILD2_EXPR}

# Why a valid native code carries no expression (the reject reason's detail).
NOT_EXPRESSION = {
    ("affectnet", 8): "none",
    ("affectnet", 9): "uncertain",
    ("affectnet", 10): "no_face",
    ("affwild2", -1): "invalid_frame",
}

# Class sets an experiment can train on; the order fixes the class ids.
CLASS_SETS = {
    # Face2Exp's AffectNet-7 order (Neutral, Happy, Sad, Surprise, Fear, Disgust, Anger).
    "basic7": CANONICAL[:7],
    "basic8_contempt": CANONICAL[:8],
    # ABAW EXPR: the 7 basic expressions plus "other".
    "abaw8": CANONICAL[:7] + ("other",),
}


class UnknownLabelError(ValueError):
    """A native code that the dataset's label map does not define."""


def to_canonical(dataset: str, code: int) -> str | None:
    """Map a dataset's native code to a canonical name (None: not an expression)."""
    try:
        table = NATIVE_CODES[dataset]
    except KeyError:
        raise KeyError(f"no label map for dataset {dataset!r}; known: {sorted(NATIVE_CODES)}") from None
    if code not in table:
        raise UnknownLabelError(f"{dataset}: unknown label code {code!r}; valid codes: {sorted(table)}")
    return table[code]


def from_canonical(dataset: str, name: str) -> int:
    """Inverse map, used by the FaceSynth writers to emit native codes."""
    for code, canonical in NATIVE_CODES[dataset].items():
        if canonical == name:
            return code
    raise KeyError(f"{dataset} has no code for expression {name!r}")


@dataclass(frozen=True)
class ClassSet:
    """An ordered subset of the canonical taxonomy: the classes a model predicts."""

    name: str
    classes: tuple[str, ...]

    @classmethod
    def named(cls, name: str) -> "ClassSet":
        if name not in CLASS_SETS:
            raise KeyError(f"unknown class set {name!r}; choose one of {sorted(CLASS_SETS)}")
        return cls(name, CLASS_SETS[name])

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, canonical: str | None) -> int | None:
        """Class id of a canonical name, or None when the set does not contain it."""
        if canonical is None or canonical not in self.classes:
            return None
        return self.classes.index(canonical)
