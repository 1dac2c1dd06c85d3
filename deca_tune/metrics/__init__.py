"""Evaluation metrics: full-ranking Recall/NDCG, noise-detection scores."""
