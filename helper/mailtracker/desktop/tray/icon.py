"""Drawing the tray icon: an envelope on a tile, grey when paused, a red
badge with the number of new opens, and an amber warning mark while opens
cannot arrive or are not counted.
"""


ICON_SIZE = 64


TILE_COLOUR = (37, 99, 235)


PAUSED_COLOUR = (107, 114, 128)


BADGE_COLOUR = (220, 38, 38)


WARNING_COLOUR = (245, 158, 11)


def draw_icon(unseen: int, paused: bool, size: int = ICON_SIZE, trouble: bool = False):
    """The icon: an envelope on a tile (grey when paused), a red badge with the new opens, an
    amber warning triangle at the bottom left with ``trouble`` (the menu's first line says which)."""
    from PIL import Image, ImageDraw, ImageFont

    scale = size / 64
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    tile = PAUSED_COLOUR if paused else TILE_COLOUR
    draw.rounded_rectangle((0, 0, size - 1, size - 1), radius=int(12 * scale), fill=tile)
    box = tuple(int(v * scale) for v in (9, 18, 55, 48))
    draw.rectangle(box, fill=(255, 255, 255))
    draw.line((box[0], box[1], size // 2, int(36 * scale), box[2], box[1]), fill=tile,
              width=max(1, int(4 * scale)), joint="curve")
    if unseen:
        badge = tuple(int(v * scale) for v in (28, 0, 63, 35))
        draw.ellipse(badge, fill=BADGE_COLOUR, outline=(255, 255, 255), width=max(1, int(3 * scale)))
        text = str(unseen) if unseen < 10 else "9+"
        font = ImageFont.load_default(size=int((26 if unseen < 10 else 21) * scale))
        centre = ((badge[0] + badge[2]) / 2, (badge[1] + badge[3]) / 2 + scale)
        draw.text(centre, text, fill=(255, 255, 255), font=font, anchor="mm")
    if trouble:
        _draw_warning(draw, scale)
    return image


def _draw_warning(draw, scale: float) -> None:
    """An amber triangle with a dark '!' in the bottom left corner (the badge holds the top right)."""
    corners = [(int(x * scale), int(y * scale)) for x, y in ((0, 63), (20, 27), (40, 63))]
    draw.polygon(corners, fill=WARNING_COLOUR, outline=(255, 255, 255), width=max(1, int(3 * scale)))
    ink = (31, 41, 55)
    draw.rectangle(tuple(int(v * scale) for v in (18, 39, 22, 52)), fill=ink)
    draw.rectangle(tuple(int(v * scale) for v in (18, 55, 22, 59)), fill=ink)
