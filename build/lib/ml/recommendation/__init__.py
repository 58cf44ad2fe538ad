"""Recommending: stage one, stage two and everything a list carries.

``stage_one`` scores, filters (suitability is a hard mask) and ranks by expected value;
``stage_two`` re-ranks the products not yet shown with the answers, using a policy from
``rerankers`` (trained from logged sessions by ``rerank_training``); ``explain`` writes reasons,
``match_score`` the 0-100 match score; ``batch`` is the nightly run over every customer that
publishes the ``stage_one_table`` serving answers from; ``contract`` is the engine protocol and
result types the API relies on; ``config`` the engine's knobs.
"""
