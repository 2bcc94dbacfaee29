"""Tests for blurfaces.heatmap: centroids, the k-NN distance grid, the density and the PNG."""
import os

import cv2
import numpy as np
import pandas as pd
import pytest

from blurfaces.errors import OptionError
from blurfaces.heatmap import centroid_mask, draw_heatmap, heatmap_data, nearest_neighbours


def test_centroid_numbers():
    c = centroid_mask([[0, 0, 10, 20], [5, 5, 6, 8]])
    np.testing.assert_allclose(c, [[5, 10], [5.5, 6.5]])
    df = pd.DataFrame({"time": [0, 33], "x1": [0, 100], "y1": [0, 50],
                       "x2": [10, 110], "y2": [20, 52]})
    np.testing.assert_allclose(centroid_mask(df), [[5, 10], [105, 51]])
    assert centroid_mask(np.zeros((0, 4))).shape == (0, 2)
    assert centroid_mask([]).shape == (0, 2)
    with pytest.raises(ValueError):
        centroid_mask([[1, 2, 3]])


def test_grid_keeps_aspect_ratio():
    x, y = np.array([640.0]), np.array([360.0])
    assert nearest_neighbours(x, y, 1280, 720, 250, 32).shape == (141, 250)
    assert nearest_neighbours(x, y, 720, 1280, 250, 32).shape == (250, 141)
    assert nearest_neighbours(x, y, 500, 500, 40, 3).shape == (40, 40)
    assert nearest_neighbours(x, y, 10000, 10, 50, 3).shape == (1, 50)


def brute_force(x, y, width, height, rows, cols, k):
    gx = (np.arange(cols) + 0.5) * width / cols
    gy = (np.arange(rows) + 0.5) * height / rows
    d = np.sqrt((gx[None, :, None] - x[None, None, :]) ** 2
                + (gy[:, None, None] - y[None, None, :]) ** 2)
    return np.sort(d, axis=2)[:, :, :k].mean(axis=2)


@pytest.mark.parametrize("n,k", [(1, 32), (5, 32), (20, 4), (20, 1), (7, 7)])
def test_matches_brute_force(n, k):
    rng = np.random.default_rng(n * 100 + k)
    x, y = rng.uniform(0, 320, n), rng.uniform(0, 180, n)
    got = nearest_neighbours(x, y, 320, 180, 32, k)
    assert got.shape == (18, 32)
    np.testing.assert_allclose(got, brute_force(x, y, 320, 180, 18, 32, min(k, n)), rtol=1e-9)


def test_no_faces_is_inf_and_zero_density():
    d = nearest_neighbours(np.array([]), np.array([]), 640, 480, 20, 32)
    assert d.shape == (15, 20) and np.isinf(d).all()
    dens = heatmap_data(d, 32.0, None, None)
    assert dens.shape == d.shape and (dens == 0).all()


def test_peak_near_cluster():
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(900, 15, 60), rng.uniform(0, 1280, 10)])
    y = np.concatenate([rng.normal(200, 15, 60), rng.uniform(0, 720, 10)])
    d = nearest_neighbours(x, y, 1280, 720, 250, 32)
    dens = heatmap_data(d, 1280 / 250)
    r, c = np.unravel_index(np.argmax(dens), dens.shape)
    cx, cy = (c + 0.5) * 1280 / 250, (r + 0.5) * 720 / 141
    assert abs(cx - 900) < 40 and abs(cy - 200) < 40
    assert dens.min() == 0.0 and dens.max() == 1.0
    assert dens[0, 0] < 0.2  # far corner


def test_heatmap_data_normalisation():
    d = np.array([[1.0, 2.0], [4.0, 8.0]])
    np.testing.assert_allclose(heatmap_data(d, 1.0), [[1, 3 / 7], [1 / 7, 0]])
    # explicit scale: densities 1/d mapped with 0 -> 0 and 0.5 -> 1, clipped
    np.testing.assert_allclose(heatmap_data(d, 1.0, 0.0, 0.5), [[1, 1], [0.5, 0.25]])
    # distances under half a cell are floored, so a cell on a face stays finite
    z = heatmap_data(np.array([[0.0, 0.5, 4.0]]), 2.0)
    np.testing.assert_allclose(z, [[1, 1, 0]])
    assert (heatmap_data(np.full((2, 2), 3.0), 1.0) == 1).all()
    with pytest.raises(OptionError):
        heatmap_data(d, 1.0, 0.5, 0.5)
    with pytest.raises(OptionError):
        heatmap_data(d, 0)


def test_option_errors():
    with pytest.raises(OptionError, match="resolution"):
        nearest_neighbours([1], [1], 10, 10, 0, 3)
    with pytest.raises(OptionError, match="neighbours"):
        nearest_neighbours([1], [1], 10, 10, 10, 0)
    with pytest.raises(OptionError):
        nearest_neighbours([1], [1], 0, 10, 10, 3)


def read_png(path):
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, "not a readable PNG"
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return img


@pytest.mark.parametrize("n", [0, 1, 5, 400])
def test_draw_heatmap_writes_png(tmp_path, n):
    rng = np.random.default_rng(n)
    cents = np.column_stack([rng.uniform(0, 1280, n), rng.uniform(0, 720, n)])
    out = tmp_path / "heat.png"
    ret = draw_heatmap(cents, 1280, 720, out, neighbours=32, resolution=100, title="test")
    assert ret == str(out)
    img = read_png(out)
    assert 700 <= img.shape[1] <= 1100 and 400 <= img.shape[0] <= 700
    assert os.listdir(tmp_path) == ["heat.png"]
    # the heat area: 800 x 450 inside a 20 px margin, under a 50 px title band
    heat = img[55:495, 25:815].reshape(-1, 3).astype(int)
    spread = heat.max(axis=0) - heat.min(axis=0)
    if n == 0:
        # uniform apart from the "no faces" note
        common = np.mean((heat == heat[0]).all(axis=1))
        assert common > 0.9
    else:
        assert spread.max() > 100
    # a colour scale beside it (many distinct colours in one column)
    bar_col = img[60:490, 840]
    assert len(np.unique(bar_col, axis=0)) > 50


def test_draw_heatmap_portrait_and_overwrite(tmp_path):
    out = tmp_path / "p.png"
    out.write_bytes(b"old")
    draw_heatmap(np.array([[10.0, 20.0], [200, 600]]), 360, 640, str(out), neighbours=32)
    img = read_png(out)
    assert img.shape[0] > img.shape[1] * 0.9
    assert sorted(os.listdir(tmp_path)) == ["p.png"]


def test_draw_heatmap_unwritable_path_raises_output_error(tmp_path):
    from blurfaces import OutputError
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="afile"):
        draw_heatmap(np.zeros((0, 2)), 640, 480, tmp_path / "afile" / "h.png")
    assert os.listdir(tmp_path) == ["afile"]
