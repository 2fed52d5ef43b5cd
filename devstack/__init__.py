"""devstack: a Docker-free local runtime of template.yaml on moto (development tooling only)."""
