# Staging hosts: real Debian guests (systemd, OpenSSH, sudo, python3) in systemd-nspawn.
# Needs root. STAGING_INDEX=<n> picks the guest (several can run at once); the default,
# 100, is `make demo`'s guest (DEMO_INDEX in tests/staging/harness.py), which the test
# suite never boots. STAGING_OPT_SIZE=64M puts a small tmpfs at /opt/tg_video_streamer.
STAGING_SH := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../tests/staging/staging-host.sh)
STAGING_INDEX ?= 100

.PHONY: staging-build staging-up staging-down staging-status staging-ssh

staging-build: ## build the cached staging rootfs (~75 s once, then instant)
	$(STAGING_SH) build

staging-up: ## boot staging guest $STAGING_INDEX and print its STAGING_* connection lines
	STAGING_INDEX=$(STAGING_INDEX) $(STAGING_SH) up

staging-down: ## stop staging guest $STAGING_INDEX and remove all it left behind
	STAGING_INDEX=$(STAGING_INDEX) $(STAGING_SH) down

staging-status: ## show whether staging guest $STAGING_INDEX runs, and how to reach it
	STAGING_INDEX=$(STAGING_INDEX) $(STAGING_SH) status

staging-ssh: ## ssh into staging guest $STAGING_INDEX as the deploy user
	STAGING_INDEX=$(STAGING_INDEX) $(STAGING_SH) ssh
