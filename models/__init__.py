from . import (
    crux_package,
    crux_package_line,
    crux_request_log,
    delivery_carrier,
    res_company,
    res_config_settings,
    sale_order,
    sale_order_line,
    stock_picking,
    stock_quant_package,
)
