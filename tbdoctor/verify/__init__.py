"""``tbdoctor verify``: the reference training job, proven end to end through TensorBoard.

result.py (values, JSON contract), job.py (the job payloads, torchrun),
readback.py (TensorBoard's event loader), server.py (TensorBoard's HTTP API),
runner.py (the phases in order). Rendering is in tbdoctor/render/verify_console.py.
"""
