#!/usr/bin/env bash
# kubetune end to end on a throwaway kind cluster, for machines with Docker:
# build both images, load them into kind, install the chart, run the CPU smoke-test
# experiment (scikit-learn digits, no GPU) to Succeeded, print `kubectl get tex`.
#
#   hack/kind-e2e.sh                  # cluster "kubetune-e2e", deleted at the end
#   KEEP_CLUSTER=1 hack/kind-e2e.sh   # keep it to look around (kind delete cluster --name kubetune-e2e)
#
# Needs docker, kind, kubectl (>= 1.23) and helm (>= 3.8) on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER=${CLUSTER:-kubetune-e2e}
TAG=${TAG:-e2e}
TIMEOUT=${TIMEOUT:-1200}        # seconds for the experiment to finish
RELEASE_NS=kubetune-system
EXPERIMENT_NS=kubetune-e2e
# The trainer on TensorFlow's CPU image: kind nodes have no GPU (and it is much smaller).
TRAINER_BASE=${TRAINER_BASE:-tensorflow/tensorflow:2.21.0}

for tool in docker kind kubectl helm; do
  command -v "$tool" > /dev/null || { echo "kind-e2e: $tool is required" >&2; exit 1; }
done

docker build -f Dockerfile.operator -t "kubetune/operator:$TAG" .
docker build -f Dockerfile.trainer --build-arg "TF_IMAGE=$TRAINER_BASE" -t "kubetune/trainer:$TAG" .

kind create cluster --name "$CLUSTER" --wait 180s
if [ -z "${KEEP_CLUSTER:-}" ]; then
  trap 'kind delete cluster --name "$CLUSTER"' EXIT
fi
k() { kubectl --context "kind-$CLUSTER" "$@"; }

kind load docker-image --name "$CLUSTER" "kubetune/operator:$TAG" "kubetune/trainer:$TAG"

helm install kubetune helm/kubetune --kube-context "kind-$CLUSTER" \
  --namespace "$RELEASE_NS" --create-namespace --wait --timeout 5m \
  --set image.repository=kubetune/operator --set image.tag="$TAG" --set image.pullPolicy=Never \
  --set trainer.image.repository=kubetune/trainer --set trainer.image.tag="$TAG" \
  --set trainer.image.pullPolicy=Never

# The chart's CPU example (ConfigMap kubetune-examples), built from the trainer values.
k create namespace "$EXPERIMENT_NS"
k -n "$RELEASE_NS" get configmap kubetune-examples -o jsonpath='{.data.digits-cpu\.yaml}' \
  | k -n "$EXPERIMENT_NS" apply -f -

deadline=$((SECONDS + TIMEOUT))
phase=""
while [ "$SECONDS" -lt "$deadline" ]; do
  phase=$(k -n "$EXPERIMENT_NS" get tex digits-cpu -o jsonpath='{.status.phase}')
  case "$phase" in
    Succeeded|Failed|Invalid) break ;;
  esac
  sleep 10
done

k -n "$EXPERIMENT_NS" get tex
if [ "$phase" != "Succeeded" ]; then
  echo "kind-e2e: experiment ended as '${phase:-not finished}' (timeout ${TIMEOUT}s)" >&2
  k -n "$EXPERIMENT_NS" describe tex digits-cpu >&2 || true
  k -n "$EXPERIMENT_NS" get jobs,pods >&2 || true
  k -n "$RELEASE_NS" logs deployment/kubetune --tail=100 >&2 || true
  exit 1
fi
echo "kind-e2e: digits-cpu Succeeded"
