"""Scoring-test texts: eval prompts (one empty) with a continuation each, in the tiny corpus'
words."""

PROMPTS = [
    "Q: the cat limped near the barn? A:",
    "Q: a dog? A:",
    "The goat slept near the road while the",
    "",
    "Q: the hen waited near the river while the child helped? A:",
]
CONTS = [
    " the vet listened.",
    " the farmer watched while the child helped.",
    " child helped.",
    "The fox rested near the barn.",
    " the farmer watched near the road while the vet listened and the cat slept.",
]
