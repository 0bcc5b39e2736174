"""CI/CD: the components and images table, the deploy script's logic and gitlab-ci-local runs."""
