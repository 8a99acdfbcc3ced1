"""Environments with known answers, registered with gymnasium on import:

- `optrepro/LQR-v0` (envs.lqr.LQREnv): exact cost and policy gradient of a linear Gaussian policy;
- `optrepro/TabularMDP-v0` (envs.tabular.TabularMDPEnv): exact values and softmax policy gradient;
- `optrepro/SparseGridworld-v0` (envs.gridworld.SparseGridworldEnv): a continuing sparse-reward
  gridworld with exact average rewards (common.rl.average_reward).

    import optrepro.envs, gymnasium as gym
    env = gym.make("optrepro/LQR-v0")
    env.unwrapped.exact_grad(K, sigma=0.5, gamma=0.9)
"""
import gymnasium as gym

IDS = {"optrepro/LQR-v0": "optrepro.envs.lqr:LQREnv", "optrepro/TabularMDP-v0": "optrepro.envs.tabular:TabularMDPEnv",
       "optrepro/SparseGridworld-v0": "optrepro.envs.gridworld:SparseGridworldEnv"}

for _id, _entry in IDS.items():
    if _id not in gym.registry:
        gym.register(id=_id, entry_point=_entry)
