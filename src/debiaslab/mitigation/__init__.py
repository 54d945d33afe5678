"""Bias mitigation: fine-tuning on counter-stereotypical / counterfactual data, and more."""
