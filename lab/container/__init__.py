"""The container side: the engine, the Amlen container, its data volume, the image.

    engine      which engine (Docker or Podman) and how to reach it      runtime  the labelled Amlen container
    volume      Amlen's data volume (its store bound, its usage)           image    save, load and check the image
    references  image names as each engine spells them
"""
