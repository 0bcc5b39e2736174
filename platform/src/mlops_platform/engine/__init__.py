"""A container engine the project starts itself (Debian's docker.io dockerd with its own state
folder, socket and networking), and the air-gapped images built for it.

`engine.engine`: install, start, stop, status and the environment callers use to reach it.
`engine.network`: what dockerd added to the host's networking, and how to take it away again.
`engine.airgap`: local base and stand-in service images for hosts with no registry.
"""
