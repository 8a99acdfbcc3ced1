"""Forward-looking GFlowNets (Pan, Malkin, Zhang & Bengio 2023): the state flow is reparameterised as
log F(s) = log F̃(s) - E(s) with E the energy of the partial state, so detailed balance becomes
log F̃(s) + log P_F(s'|s) + (E(s') - E(s)) = log F̃(s') + log P_B(s|s'): each transition gets its own
credit, and incomplete trajectories train the sampler. The losses (TB, DB, FL-DB), the HyperGrid with an
additive energy and the exact evaluation live in common.rl.gflownet."""
from optrepro.rl.gflownet import db_residuals as Method  # noqa: F401  (FL-DB: forward_looking=True)
from optrepro.rl.gflownet import HyperGrid, GridPolicy, exact_flows, l1_to_target, tb_residuals  # noqa: F401
