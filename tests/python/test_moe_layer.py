"""fusco.nn.MoELayer across in-process ranks equals the same layer computed densely."""

import pytest
import torch

import fusco
from fusco.nn import MoELayer
from conftest import run_ranks
from dense_moe import dense_forward

WORLD, HIDDEN, FFN, EXPERTS, TOPK = 4, 8, 12, 8, 2


@pytest.mark.parametrize("dedup", ["none", "node"])
def test_forward_and_gradients_equal_the_dense_layer(dedup):
    comms = fusco.local_group(WORLD, 2)
    layers = [MoELayer(c, HIDDEN, FFN, EXPERTS, TOPK, dedup=dedup, seed=3, dtype=torch.float64)
              for c in comms]
    gen = torch.Generator().manual_seed(11)
    xs = [torch.randn(t, HIDDEN, dtype=torch.float64, generator=gen) for t in (6, 0, 9, 5)]
    cs = [torch.randn_like(x) for x in xs]

    def body(comm):
        layer = layers[comm.rank]
        x = xs[comm.rank].clone().requires_grad_()
        out = layer(x)
        (out * cs[comm.rank]).sum().backward()
        return out.detach(), x.grad

    results = run_ranks(comms, body)

    # Dense: the same parameters, copied, all experts in one place.
    dense_layers = [MoELayer(c, HIDDEN, FFN, EXPERTS, TOPK, seed=3, dtype=torch.float64)
                    for c in comms]
    for dense, layer in zip(dense_layers, layers):
        dense.load_state_dict(layer.state_dict())
    for r in range(WORLD):
        x = xs[r].clone().requires_grad_()
        out = dense_forward(x, dense_layers, EXPERTS, TOPK)
        torch.testing.assert_close(results[r][0], out.detach())
        if x.shape[0] == 0:  # nothing routed: no graph, no gradient
            assert results[r][1].shape == x.shape and not results[r][1].any()
            continue
        (out * cs[r]).sum().backward()
        torch.testing.assert_close(results[r][1], x.grad)
    # Expert gradients: the owning rank's local grads equal the dense ones (all tokens).
    for r in range(WORLD):
        torch.testing.assert_close(layers[r].w1.grad, dense_layers[r].w1.grad)
        torch.testing.assert_close(layers[r].w2.grad, dense_layers[r].w2.grad)
    # The router is replicated: each rank's grad covers its own tokens; the sum is dense's.
    router_sum = sum(layer.router.grad for layer in layers)
    dense_router = sum(layer.router.grad for layer in dense_layers[:1])
    torch.testing.assert_close(router_sum, dense_router)


def test_training_steps_reduce_the_loss():
    comms = fusco.local_group(WORLD, 2)
    layers = [MoELayer(c, HIDDEN, FFN, EXPERTS, TOPK, seed=5) for c in comms]
    gen = torch.Generator().manual_seed(2)
    xs = [torch.randn(16, HIDDEN, generator=gen) for _ in range(WORLD)]
    targets = [torch.randn(16, HIDDEN, generator=gen) for _ in range(WORLD)]

    def body(comm):
        layer = layers[comm.rank]
        optimizer = torch.optim.SGD(layer.parameters(), lr=0.05)
        losses = []
        for _ in range(10):
            optimizer.zero_grad()
            loss = ((layer(xs[comm.rank]) - targets[comm.rank]) ** 2).mean()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
        return losses

    for losses in run_ranks(comms, body):
        assert losses[-1] < losses[0]
