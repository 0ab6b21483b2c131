"""valuetrace: locate where inside a language model a value weakens across training stages."""

__version__ = "0.1.0"
