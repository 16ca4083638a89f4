"""`volume view`: watch a converted sequence in 3D in the browser, orbiting while it plays.

    page.py     what the page reads: view.json and each frame as .spz (formats/spz.py)
    server.py   the page and frames served on 127.0.0.1 (frames encoded as they are asked for)
    export.py   the same as a static folder (--export DIR)
    command.py  the command's work apart from its options: open, serve until Ctrl-C, or export
    static/     the page: index.html, viewer.js, viewer.css, and vendor/ (three.js + Spark, bundled
                by web/build.sh from the versions pinned in web/package.json; MIT, LICENSES.txt)
"""
