"""The synthetic bank: raw tables with planted, learnable structure, and an oracle for evaluation."""
from ml.datagen.feedback import RESPONSES, FeedbackSimulator
from ml.datagen.generate import generate

__all__ = ["generate", "FeedbackSimulator", "RESPONSES"]
