// Package deploy holds what runs Avila outside a developer's machine: the
// container image (Dockerfile), example reverse proxy snippets (nginx/,
// caddy/), Kubernetes manifests (k8s/, a kustomize base and overlays) and,
// at the repository root, docker-compose.yml.
//
// It has no Go code of its own. Its tests keep those files honest without a
// Docker engine: they load docker-compose.yml with the Compose specification's
// own loader and check services, images, ports, environment and ordering
// against what the binaries expect, and read the Dockerfile's stages. The
// Kubernetes overlays are rendered with kustomize's library, decoded strictly
// into the Kubernetes API types, and checked against the flags the built
// binaries print for -h (flags_test.go).
package deploy
