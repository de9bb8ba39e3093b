"""Readiness: graphs against /object_info, preflight before a render, the doctor report.

May import: comfy, planning, models, files, config, errors.
"""
