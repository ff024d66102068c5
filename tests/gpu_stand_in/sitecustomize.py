"""Stands in for TensorFlow's GPU list in every Python process of a test (on PYTHONPATH): with SGAN_TEST_GPUS=N,
`tf.config` reports N GPUs, and what a process makes visible and lets grow is appended to SGAN_TEST_GPU_LOG as
one JSON line. The computation itself stays on the CPU."""

import json
import os

if os.environ.get("SGAN_TEST_GPUS"):
    import tensorflow as tf

    _gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU")
             for i in range(int(os.environ["SGAN_TEST_GPUS"]))]
    _real_list = tf.config.list_physical_devices

    def _log(**record):
        with open(os.environ["SGAN_TEST_GPU_LOG"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), **record}) + "\n")

    def list_physical_devices(device_type=None):
        return list(_gpus) if device_type == "GPU" else _real_list(device_type)

    def set_visible_devices(devices, device_type=None):
        _log(visible=[d.name for d in devices], device_type=device_type)

    def set_memory_growth(device, enable):
        _log(growth=device.name, enable=enable)

    tf.config.list_physical_devices = list_physical_devices
    tf.config.set_visible_devices = set_visible_devices
    tf.config.experimental.set_memory_growth = set_memory_growth
