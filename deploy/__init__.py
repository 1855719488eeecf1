"""Export of trained policies to drones: ONNX, C99, manifests, radio messages, waypoint plans.

    from deploy.export import export_policy, ExportOptions     # the whole pipeline (gridswarm export)
    from deploy.agent import AgentStep, MessageEncoder          # one drone's step as a torch module
    from deploy.ccompile import compile_module, link            # torch module -> C99 function
    from deploy.cbuild import build, CFunction                  # gcc + ctypes
    from deploy.verify import compare, recurrent_drift          # torch vs ONNX Runtime vs C
    from deploy.rollout import decentralized_rollout            # closed loop in sim.GridEnv
    from deploy.radio import pack, unpack, message_format       # the P2P message
    from deploy.waypoints import GridToWorld, make_plan, plan_files

Modules are imported individually (nothing here) so that `import deploy.waypoints` needs no torch.
"""
