"""HTTP layer: typed dependencies and one router per resource."""
