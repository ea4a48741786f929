"""o4o-operator: reconciles DeploymentInstance resources into running O4O installations."""

__version__ = "0.1.0"
