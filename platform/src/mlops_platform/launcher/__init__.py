"""The launcher behind run.sh: settings, secrets, the local (supervisord) and docker runtimes, the
service definitions, health checks and the bootstrap of the example project."""
