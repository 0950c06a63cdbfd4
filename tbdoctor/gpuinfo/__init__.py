"""Host probes of the NVIDIA driver, GPUs, other accelerators and CUDA toolkits.

``gpu.probe`` and ``cuda.probe`` are the entry points registered in
``tbdoctor.probe.PROBES``; the other modules each read one source (NVML,
nvidia-smi, the kernel's files, the dynamic loader). They gather facts only:
no findings, no output.
"""
