# The crmsync image: the control plane (crmsync serve) and the agents (crmsync agent) of deploy/kubernetes.
# goreleaser builds it (.goreleaser.yml, dockers_v2) from the crmsync binaries it has just built, one per
# platform, found under $TARGETPLATFORM in the build context: nothing is compiled here.
#
# distroless/static: CA certificates, /etc/passwd with the nonroot user (65532), tzdata, nothing else (no
# shell, no package manager). The binary is static (CGO_ENABLED=0).
FROM gcr.io/distroless/static-debian12:nonroot
ARG TARGETPLATFORM
COPY ${TARGETPLATFORM}/crmsync /usr/local/bin/crmsync
USER 65532:65532
# The control plane's data directory (its key file and local socket; SQLite's database when --store is not
# PostgreSQL) and the agents' credentials are mounted by the deployment.
ENTRYPOINT ["/usr/local/bin/crmsync"]
CMD ["--help"]
