# Copyright 2026 crux_tracking contributors
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl).
{
    "name": "CRUXconnect Tracking",
    "summary": "Report each shipped package's tracking to CRUXconnect and keep its package_uuid",
    "version": "18.0.1.0.0",
    "category": "Inventory/Delivery",
    "website": "https://github.com/crux-tracking/crux_tracking",
    "author": "crux_tracking contributors",
    "license": "LGPL-3",
    "development_status": "Beta",
    "depends": ["sale_stock", "stock_delivery"],
    "external_dependencies": {"python": ["requests"]},
    "data": [
        "security/ir.model.access.csv",
        "data/mail_activity_type_data.xml",
        "data/ir_cron_data.xml",
        "views/crux_package_views.xml",
        "views/crux_request_log_views.xml",
        "views/stock_picking_views.xml",
        "views/sale_order_views.xml",
        "views/delivery_carrier_views.xml",
        "views/res_config_settings_views.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "crux_tracking/static/tests/tours/*.js",
        ],
    },
}
