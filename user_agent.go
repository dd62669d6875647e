package wetix

// userAgent names the plugin and the version that makes every call to WeTix:
// "vault-plugin-secrets-wetix/v0.2.0". It is read at each client build, not
// cached, so a test that sets Version sees it.
func userAgent() string {
	return "vault-plugin-secrets-wetix/" + Version
}
