from shopstream.cli.main import app

app(prog_name="shopstream")
