"""The proxy variables: what image builds, fetch stages, git and the host executor pass on."""

from worker.driver.egress import PROXY_NAMES

PROXY_VARS = (*PROXY_NAMES, "NO_PROXY", "no_proxy")
