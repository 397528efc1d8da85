"""The proxy variables: what image builds, fetch stages, git and the host executor pass on."""

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")
