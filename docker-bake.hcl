# Both images of the example worker in one bake: `docker buildx bake` (needs buildx).
# BuildKit runs the two builds together and shares their common steps (base, apt, core).
variable "PYTHON_IMAGE" { default = "python:3.12-slim" }
variable "PYTHON_VERSION" { default = "3.12" }
variable "TAG" { default = "dev" }
# The frontend, as the spec's own `# syntax=` line names it (scripts/frontend-image.sh makes
# it locally); point it at a published one, e.g. KILN_FRONTEND=localhost:5000/kiln/frontend:1.
variable "KILN_FRONTEND" { default = "kiln/frontend:latest" }

group "default" { targets = ["minimal", "cuda"] }

target "_worker" {
  context    = "examples/worker"
  dockerfile = "../../specs/worker.yaml"
  args       = { PYTHON_IMAGE = PYTHON_IMAGE, PYTHON_VERSION = PYTHON_VERSION, BUILDKIT_SYNTAX = KILN_FRONTEND }
  secret     = ["id=pipca,src=/etc/ssl/certs/ca-certificates.crt"]
}

target "minimal" {
  inherits = ["_worker"]
  target   = "minimal"
  tags     = ["worker:minimal-${TAG}"]
}

# zstd layers (a large CUDA image compresses and unpacks faster; pullers need Docker 23+
# or containerd 1.5+): --set 'cuda.output=type=registry,compression=zstd,oci-mediatypes=true,force-compression=true'
# (docs/usage.md, "Large images: zstd layers").
target "cuda" {
  inherits = ["_worker"]
  target   = "cuda"
  tags     = ["worker:cuda-${TAG}"]
}
