"""kubetune: Kubernetes-native Bayesian hyperparameter tuning with dollar-cost tracking."""

__version__ = "0.1.0"
