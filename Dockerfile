# The plugin as a container image, for Vault's container plugin runtime
# (vault plugin register -oci_image=...) and for Kubernetes pods that take the
# plugin from an image. Nothing is compiled or pulled here: the image holds the
# static binary `make release` built (CGO off), on an empty base. Build it
# from the release directory, which is the build context:
#
#   make release PLATFORMS=linux/amd64
#   docker build --build-arg VERSION=$(make -s version) -t vault-plugin-secrets-wetix:0.2.0 dist
#
# (`make image` does both.) docs/install.md explains how to register it.
FROM scratch

ARG VERSION
# The classic builder does not set these; BuildKit sets them from --platform.
ARG TARGETOS=linux
ARG TARGETARCH=amd64

LABEL org.opencontainers.image.title="vault-plugin-secrets-wetix" \
      org.opencontainers.image.description="HashiCorp Vault secrets engine serving WeTix Open API access tokens" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="https://github.com/wetix-oss/vault-plugin-secrets-wetix"

COPY ${TARGETOS}_${TARGETARCH}/vault-plugin-secrets-wetix /bin/vault-plugin-secrets-wetix

# No root: the plugin needs no privilege, and gVisor-run plugin containers
# and restricted Kubernetes pods refuse uid 0. 65532 is the usual "nonroot".
USER 65532:65532

ENTRYPOINT ["/bin/vault-plugin-secrets-wetix"]
