"""One shared declaration for every GPU asset: the `gpu` pool and the Kubernetes op tags.

Locally the tags are inert and the pool serialises GPU steps; on Kubernetes
(`K8sRunLauncher` + `k8s_job_executor`) each GPU step's pod requests a GPU and lands on a
CUDA node. Op tags travel with every launch path (UI, backfills, automation).
"""

GPU_POOL = "gpu"

GPU_OP_TAGS = {
    "dagster-k8s/config": {
        "container_config": {
            "resources": {
                "requests": {"nvidia.com/gpu": "1", "cpu": "4", "memory": "32Gi"},
                "limits": {"nvidia.com/gpu": "1", "memory": "64Gi"},
            }
        },
        "pod_spec_config": {
            "node_selector": {"nvidia.com/gpu.present": "true"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        },
    }
}
