"""Saving and loading fits: ``bayesmix.save(obj, path)`` / ``bayesmix.load(path, data=...)``.

A saved fit is a zarr store (a directory; ``xarray.DataTree.to_zarr``). zarr writes
DataTree groups natively, is already installed with the scientific stack, and is
kept by the Zarr developers; netCDF would need h5netcdf or netCDF4 (and their HDF5
builds) for groups, and scipy's netCDF3 writer has none.

What is stored (root attributes, JSON):

* ``bayesmix_format`` / ``bayesmix_format_version`` (``FORMAT_VERSION``) and the
  package version that wrote it; a file of another format version is refused
  (``FormatVersionError``);
* ``bayesmix_call``: the registry factory and its arguments (all but the data;
  ``families.calls``), user priors included (below), and ``bayesmix_spec``, the
  frozen spec (after ``fit_ml``'s integration refinement, the refined one);
* ``bayesmix_data_hash``: SHA-256 of the prepared arrays (``data_hash``), so
  ``load`` refuses other data (``DataMismatchError``), and the same DataFrame
  always gives the same hash;
* for an ``MLResult``: every field but the model, numeric arrays as zarr arrays
  (bit for bit), tables as groups (numeric columns as arrays, the others and the
  index as JSON, dtypes restored), records (convergence, identification,
  integration) as JSON. Python's JSON writes floats with ``repr``, which reads
  back to the same double, so nothing is rounded;
* for a posterior (the ``DataTree`` of ``bayesmix.sample``): the tree itself.

``load`` replays the factory call on the data given (the same validation as
fitting), rebuilds the spec, checks the hash and restores the result on the
fresh model: the LL recomputed at the stored theta equals the stored LL.

User priors (``priors={name: pm.X.dist(...)}``) are stored as the RandomVariable
Op (its class and props) and its constant parameters and size; the stored form is
rebuilt at save time and must give an equal Op with equal parameters, or saving
is refused with the reason. A prior with symbolic (non-constant) parameters is
refused for the same reason.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import importlib
import json
import os
import shutil

import numpy as np
import pandas as pd
import xarray as xr

from bayesmix.exceptions import DataMismatchError, FormatVersionError, PersistenceError
from bayesmix.families.base import FamilyModel
from bayesmix.families.calls import FactoryCall, no_call_error
from bayesmix.fit.results import MLResult

FORMAT = "bayesmix-fit"
FORMAT_VERSION = 1
_KIND_ML, _KIND_POSTERIOR = "MLResult", "posterior"


def _version() -> str:
    """The installed package version (pyproject.toml's, as ``bayesmix.__version__``)."""
    from importlib import metadata

    try:
        return metadata.version("bayesmix")
    except metadata.PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


# --------------------------------------------------------------------------- JSON with types
def encode(value, where: str = "value"):
    """A JSON-ready form of ``value`` that ``decode`` turns back into an equal
    object (tuples, non-string keys, arrays with dtype, bayesmix dataclasses, NA,
    PyMC priors); anything else is a ``PersistenceError`` naming ``where``."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if value is pd.NA:
        return {"__na__": 1}
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            return {"__objarray__": [encode(v, where) for v in value.reshape(-1).tolist()], "shape": value.shape}
        return {"__ndarray__": value.reshape(-1).tolist(), "dtype": value.dtype.str, "shape": list(value.shape)}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        return {"__dict__": [[encode(k, where), encode(v, f"{where}[{k!r}]")] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__module__.startswith("bayesmix"):
        fields = {f.name: encode(getattr(value, f.name), f"{where}.{f.name}") for f in dataclasses.fields(value)
                  if f.init}
        return {"__dataclass__": f"{type(value).__module__}:{type(value).__qualname__}", "fields": fields}
    if _is_random_variable(value):
        return {"__prior__": _encode_prior(value, where)}
    raise PersistenceError(f"save: {where}: got a {type(value).__name__}, which bayesmix cannot store; give "
                           "plain values (numbers, strings, lists, dicts, arrays) for the model's arguments.")


def _import(path: str):
    module, _, qualname = path.partition(":")
    if not (module == "bayesmix" or module.startswith("bayesmix.") or module.startswith("pytensor.")
            or module.startswith("pymc.")):
        raise PersistenceError(f"load: the file names the class {path!r}, outside bayesmix, PyMC and PyTensor; "
                               "it was not written by bayesmix.save.")
    obj = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def decode(value):
    """The inverse of ``encode``."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "__na__" in value:
        return pd.NA
    if "__ndarray__" in value:
        return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
    if "__objarray__" in value:
        out = np.empty(len(value["__objarray__"]), dtype=object)
        out[:] = [decode(v) for v in value["__objarray__"]]
        return out.reshape(value["shape"])
    if "__tuple__" in value:
        return tuple(decode(v) for v in value["__tuple__"])
    if "__dict__" in value:
        return {_hashable(decode(k)): decode(v) for k, v in value["__dict__"]}
    if "__dataclass__" in value:
        return _import(value["__dataclass__"])(**{k: decode(v) for k, v in value["fields"].items()})
    if "__prior__" in value:
        return _decode_prior(value["__prior__"])
    return {k: decode(v) for k, v in value.items()}


def _hashable(key):
    return tuple(_hashable(k) for k in key) if isinstance(key, (list, tuple)) else key


def _dumps(value, where: str) -> str:
    return json.dumps(encode(value, where))


# --------------------------------------------------------------------------- priors
def _is_random_variable(value) -> bool:
    from pytensor.tensor.random.op import RandomVariable

    return isinstance(getattr(getattr(value, "owner", None), "op", None), RandomVariable)


def _constant(var, where: str):
    from pytensor.graph.basic import Constant

    try:
        from pytensor.graph.traversal import graph_inputs
    except ImportError:  # PyTensor before the move
        from pytensor.graph.basic import graph_inputs
    from pytensor.tensor.type_other import NoneTypeT

    if isinstance(var.type, NoneTypeT):
        return None
    if isinstance(var, Constant):
        return np.asarray(var.data)
    if all(isinstance(v, Constant) for v in graph_inputs([var])):
        return np.asarray(var.eval())
    raise PersistenceError(f"save: {where}: the prior has a symbolic (non-constant) parameter, which bayesmix "
                           "cannot store reproducibly. Fix: give the prior constant parameters, e.g. "
                           "pm.Normal.dist(0, 2.5), or save the fit of a model with default priors.")


def _encode_prior(dist, where: str) -> dict:
    op = dist.owner.op
    _, size, *params = dist.owner.inputs
    record = {"op": f"{type(op).__module__}:{type(op).__qualname__}",
              "props": encode({p: getattr(op, p) for p in op.__props__}, where),
              "params": [encode(_constant(p, where), where) for p in params],
              "size": encode(_constant(size, where), where)}
    try:
        rebuilt = _decode_prior(record)
        same = rebuilt.owner.op == op and all(
            np.array_equal(_constant(a, where), _constant(b, where)) and a.type == b.type
            for a, b in zip(rebuilt.owner.inputs[2:], dist.owner.inputs[2:]))
    except Exception as err:  # noqa: BLE001 (any failure means: no reproducible form)
        same, reason = False, f" ({type(err).__name__}: {err})"
    else:
        reason = ""
    if not same:
        raise PersistenceError(f"save: {where}: the prior {op} could not be stored in a form that rebuilds the same "
                               f"distribution{reason}. Fix: use a standard PyMC distribution with constant "
                               "parameters, or save a model with default priors.")
    return record


def _decode_prior(record: dict):
    cls = _import(record["op"])
    op = cls(**decode(record["props"]))
    params = [decode(p) for p in record["params"]]
    size = decode(record["size"])
    return op(*params, size=None if size is None else tuple(np.atleast_1d(size).tolist()))


# --------------------------------------------------------------------------- data hash
def data_hash(data) -> str:
    """SHA-256 of the prepared data (``PreparedData``): item names, kinds and
    categories, the observed codes and the missingness pattern, covariates,
    clusters and row labels. The same DataFrame gives the same hash; any change
    to a value the model sees changes it."""
    h = hashlib.sha256()
    header = {"items": [[str(it.name), it.kind, [repr(c) for c in it.categories]] for it in data.items],
              "covariates": [str(c) for c in data.covariate_names], "cluster": repr(data.cluster_name),
              "clusters": None if data.cluster_labels is None else [repr(c) for c in data.cluster_labels],
              "rows": [repr(r) for r in data.row_index], "shape": list(data.y.shape)}
    h.update(json.dumps(header, sort_keys=True).encode())
    arrays = [np.where(data.observed, data.y, 0.0).astype("<f8"), np.asarray(data.observed, bool),
              np.asarray(data.covariates, "<f8")]
    if data.cluster_idx is not None:
        arrays.append(np.asarray(data.cluster_idx, "<i8"))
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------- model records
def model_attrs(fam) -> dict:
    """The root attributes that let ``load`` / ``predict_classes`` rebuild ``fam``."""
    if not isinstance(fam, FamilyModel):
        raise PersistenceError(f"save: model: got {type(fam).__name__}; give the family object (bayesmix.lca(...), "
                               "...) or its MLResult.")
    if fam.call is None:
        raise no_call_error(fam, "save")
    return {"bayesmix_format": FORMAT, "bayesmix_format_version": FORMAT_VERSION, "bayesmix_version": _version(),
            "bayesmix_family": fam.call.family,
            "bayesmix_call": _dumps(fam.call.kwargs, f"the arguments of bayesmix.{fam.call.family}()"),
            "bayesmix_spec": _dumps(fam.spec, "spec"), "bayesmix_data_hash": data_hash(fam.data),
            "bayesmix_n_persons": int(fam.data.n_persons), "bayesmix_items": _dumps(_items(fam.data), "items"),
            "bayesmix_saved": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _items(data) -> list:
    return [(it.name, it.kind, tuple(it.categories)) for it in data.items]


def stored_items(attrs: dict) -> list:
    """The fitted items (name, kind, categories) of stored ``attrs``."""
    return decode(json.loads(attrs["bayesmix_items"]))


def check_format(attrs: dict, path) -> None:
    """Refuse a store that is not a bayesmix fit of this format version."""
    if attrs.get("bayesmix_format") != FORMAT:
        raise PersistenceError(f"load: {path!s} is not a file written by bayesmix.save (no bayesmix_format "
                               "attribute).")
    version = attrs.get("bayesmix_format_version")
    if version != FORMAT_VERSION:
        raise FormatVersionError(
            f"load: {path!s} has format version {version!r} (written by bayesmix {attrs.get('bayesmix_version')}); "
            f"this bayesmix {_version()} reads format version {FORMAT_VERSION}. Fix: load it with the bayesmix "
            "version that wrote it and refit, or save it again from there.")


def rebuild(attrs: dict, data, what: str = "load", check_hash: bool = True):
    """The family object described by stored ``attrs``, replayed on ``data``; with
    ``check_hash`` it must be the data of the fit."""
    if data is None:
        raise PersistenceError(f"{what}: data: got None; give the DataFrame the model was fitted to "
                               f"(bayesmix.{attrs.get('bayesmix_family')} is rebuilt on it).")
    call = FactoryCall(attrs["bayesmix_family"], data, decode(json.loads(attrs["bayesmix_call"])))
    fam = call.replay(data, spec=decode(json.loads(attrs["bayesmix_spec"])), quiet=False)
    if check_hash and data_hash(fam.data) != attrs["bayesmix_data_hash"]:
        raise DataMismatchError(
            f"{what}: data: the prepared data differ from the fit's (hash {data_hash(fam.data)[:12]} against the "
            f"stored {attrs['bayesmix_data_hash'][:12]}; {fam.data.n_persons} persons given, "
            f"{attrs.get('bayesmix_n_persons')} in the fit). Give the DataFrame the model was fitted to; for "
            "class membership on new data use bayesmix.predict_classes.")
    return fam


# --------------------------------------------------------------------------- tables
def _frame_to_dataset(df: pd.DataFrame) -> xr.Dataset:
    variables, columns = {}, []
    for i, (name, col) in enumerate(df.items()):
        if isinstance(col.dtype, np.dtype) and col.dtype.kind in "biuf":
            variables[f"c{i}"] = ("row", col.to_numpy())
            columns.append([encode(name), str(col.dtype), None])
        else:
            columns.append([encode(name), str(col.dtype), encode(col.tolist(), f"column {name!r}")])
    index = df.index
    meta = {"columns": columns, "columns_name": encode(df.columns.name),
            "index": {"names": encode(list(index.names)), "dtypes": [str(index.get_level_values(i).dtype)
                                                                     for i in range(index.nlevels)],
                      "levels": [encode(index.get_level_values(i).tolist()) for i in range(index.nlevels)],
                      "range": encode([index.start, index.stop, index.step]) if isinstance(index, pd.RangeIndex)
                      else None}}
    return xr.Dataset(variables, attrs={"frame": json.dumps(meta)})


def _dataset_to_frame(ds: xr.Dataset) -> pd.DataFrame:
    meta = json.loads(ds.attrs["frame"])
    idx = meta["index"]
    if idx["range"] is not None:
        start, stop, step = decode(idx["range"])
        index = pd.RangeIndex(start, stop, step, name=decode(idx["names"])[0])
    else:
        levels = [pd.Index(decode(v), dtype=d) for v, d in zip(idx["levels"], idx["dtypes"])]
        names = decode(idx["names"])
        index = (pd.MultiIndex.from_arrays(levels, names=names) if len(levels) > 1
                 else levels[0].rename(names[0]))
    data = {}
    for i, (name, dtype, values) in enumerate(meta["columns"]):
        if values is None:
            data[i] = pd.Series(ds[f"c{i}"].to_numpy(), index=index, dtype=dtype)
        else:
            data[i] = pd.Series(decode(values), index=index, dtype=dtype)
    out = pd.DataFrame(data, index=index)
    out.columns = pd.Index([decode(c[0]) for c in meta["columns"]], name=decode(meta["columns_name"]))
    return out


def _numeric(v) -> bool:
    return isinstance(v, np.ndarray) and v.dtype.kind in "biuf"


def _result_tree(res: MLResult) -> xr.DataTree:
    arrays, json_fields, kinds, tree = {}, {}, {}, {}
    for f in dataclasses.fields(res):
        if f.name == "model":
            continue
        v = getattr(res, f.name)
        if isinstance(v, pd.DataFrame):
            kinds[f.name] = "frame"
            tree[f"frames/{f.name}"] = _frame_to_dataset(v)
        elif _numeric(v):
            kinds[f.name] = "array"
            arrays[f.name] = ([f"{f.name}_d{i}" for i in range(v.ndim)], v)
        elif isinstance(v, dict) and v and all(isinstance(x, pd.DataFrame) for x in v.values()):
            kinds[f.name] = ["frames", encode(list(v))]
            for i, x in enumerate(v.values()):
                tree[f"frame_dicts/{f.name}/{i}"] = _frame_to_dataset(x)
        elif isinstance(v, dict) and v and all(_numeric(x) for x in v.values()):
            kinds[f.name] = ["arrays", encode(list(v))]
            tree[f"array_dicts/{f.name}"] = xr.Dataset(
                {f"v{i}": ([f"v{i}_d{j}" for j in range(x.ndim)], x) for i, x in enumerate(v.values())})
        else:
            kinds[f.name] = "json"
            json_fields[f.name] = encode(v, f"MLResult.{f.name}")
    root = xr.Dataset(arrays, attrs={"bayesmix_kind": _KIND_ML, "bayesmix_result_class":
                                     f"{type(res).__module__}:{type(res).__qualname__}",
                                     "bayesmix_fields": json.dumps(kinds), "bayesmix_json": json.dumps(json_fields)})
    return xr.DataTree.from_dict({"/": root, **tree})


def _result_from_tree(dt: xr.DataTree, fam) -> MLResult:
    attrs = dt.attrs
    kinds = json.loads(attrs["bayesmix_fields"])
    json_fields = json.loads(attrs["bayesmix_json"])
    values = {}
    for name, kind in kinds.items():
        if kind == "frame":
            values[name] = _dataset_to_frame(dt[f"frames/{name}"].to_dataset())
        elif kind == "array":
            values[name] = dt.to_dataset()[name].to_numpy()
        elif kind == "json":
            values[name] = decode(json_fields[name])
        elif kind[0] == "frames":
            values[name] = {k: _dataset_to_frame(dt[f"frame_dicts/{name}/{i}"].to_dataset())
                            for i, k in enumerate(decode(kind[1]))}
        else:
            ds = dt[f"array_dicts/{name}"].to_dataset()
            values[name] = {k: ds[f"v{i}"].to_numpy() for i, k in enumerate(decode(kind[1]))}
    cls = _import(attrs["bayesmix_result_class"])
    known = {f.name for f in dataclasses.fields(cls)}
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in values and f.name != "model"
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise FormatVersionError(f"load: the file has no value for {missing} of {cls.__name__}; it was written by "
                                 f"bayesmix {attrs.get('bayesmix_version')}. Refit with this version.")
    return cls(model=fam, **{k: v for k, v in values.items() if k in known})


# --------------------------------------------------------------------------- save / load
def save(obj, path, *, model=None, overwrite: bool = False) -> str:
    """Save a fit to a zarr store (a directory) at ``path``.

    Parameters
    ----------
    obj : MLResult or xarray.DataTree
        An ML fit (``bayesmix.fit_ml``) or a posterior (``bayesmix.sample``).
    model : family object or MLResult, optional
        For a posterior: the model that was sampled (the ``ml=`` result will do).
        Not needed for a posterior that was itself loaded with ``bayesmix.load``.
    overwrite : bool
        Replace an existing store at ``path`` (default: refuse).

    Returns the path. Read it back with ``bayesmix.load(path, data=df)``.
    """
    path = os.fspath(path)
    if isinstance(obj, MLResult):
        tree = _result_tree(obj)
        tree.attrs.update(model_attrs(obj.model))
    elif isinstance(obj, xr.DataTree):
        tree = obj.copy()
        fam = model.model if isinstance(model, MLResult) else model
        if fam is not None:
            tree.attrs.update(model_attrs(fam))
        elif tree.attrs.get("bayesmix_format") != FORMAT:
            raise PersistenceError("save: model: got None for a posterior; give the sampled model, "
                                   "bayesmix.save(dt, path, model=model) (or model=res, its ML fit), so that "
                                   "load and predict_classes can rebuild it.")
        tree.attrs["bayesmix_kind"] = _KIND_POSTERIOR
    else:
        raise PersistenceError(f"save: obj: got {type(obj).__name__}; give an MLResult (bayesmix.fit_ml) or the "
                               "DataTree of bayesmix.sample.")
    if os.path.exists(path):
        if not overwrite:
            raise PersistenceError(f"save: path: {path!r} exists; pass overwrite=True to replace it, or another path.")
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    tree.to_zarr(path, mode="w-", consolidated=False)
    return path


def _read_attrs(path: str) -> dict:
    import zarr

    if not os.path.exists(path):
        raise PersistenceError(f"load: path: {path!r} does not exist.")
    try:
        return dict(zarr.open_group(path, mode="r").attrs)
    except Exception as err:  # noqa: BLE001
        raise PersistenceError(f"load: {path!r} is not a zarr store written by bayesmix.save ({err}).") from None


def load(path, data=None):
    """Read a fit written by ``bayesmix.save``.

    An ML fit needs ``data``, the DataFrame it was fitted to: the model is rebuilt
    on it through the recorded factory call (the same validation as fitting), the
    spec restored, and the data checked against the stored hash
    (``DataMismatchError``). The result is an ``MLResult`` whose numbers are the
    stored ones bit for bit. A posterior comes back as the ``DataTree`` (its root
    attributes describe the model: ``predict_classes`` and ``save`` use them);
    ``data``, when given, is checked against the hash.

    A file of another format version raises ``FormatVersionError``.
    """
    path = os.fspath(path)
    attrs = _read_attrs(path)
    check_format(attrs, path)
    dt = xr.open_datatree(path, engine="zarr", consolidated=False).load()
    dt.close()
    if attrs.get("bayesmix_kind") == _KIND_POSTERIOR:
        if data is not None:
            rebuild(attrs, data)
        return dt
    return _result_from_tree(dt, rebuild(attrs, data))
